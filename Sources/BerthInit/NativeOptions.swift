import ArgumentParser

/// The parsed command line as plain data.
struct NativeOptions: Equatable {
    var verbose = 0
    var killGroup = false
    var rewrite: [String] = []
    var remapExit: [String] = []
    var parentDeathSignal: String?
    var killGrace: String?
    var warnOnReap = false
    var command: [String] = []
}

extension NativeCommand {
    var options: NativeOptions {
        NativeOptions(verbose: verbose, killGroup: killGroup, rewrite: rewrite, remapExit: remapExit,
                      parentDeathSignal: parentDeathSignal, killGrace: killGrace, warnOnReap: warnOnReap,
                      command: command)
    }
}
