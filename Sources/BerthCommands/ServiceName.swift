import ArgumentParser

/// A service's name as the control socket's one-line, space-separated
/// request can carry it.
struct ServiceName: ExpressibleByArgument {
    let name: String

    init?(argument: String) {
        guard !argument.isEmpty, argument.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value != 0x7f }) else { return nil }
        name = argument
    }
}
