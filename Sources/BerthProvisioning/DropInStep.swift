import BerthCore
import Glibc

/// An image author's own step: an executable in /etc/berth/plugins.d (or
/// BERTH_PLUGINS_DIR), run after the built-in steps in name order, like
/// s6-overlay's cont-init.d, with the container's environment. Its output
/// is prefixed with its name in berth's log.
public final class DropInStep: ProvisioningStep {
    public let name: String
    public let dependencies: [String]
    let path: String
    let timeout: Duration

    init(path: String, fileName: String, after: [String], timeout: Duration) {
        self.name = "plugins.d/\(fileName)"
        self.path = path
        self.dependencies = after
        self.timeout = timeout
    }

    /// The executables in `directory`, in name order, each depending on the
    /// one before (and the first on every built-in step).
    public static func scan(_ directory: String, after builtIns: [String], timeout: Duration) -> [DropInStep] {
        let names = (directoryNames(directory) ?? []).filter { !$0.hasPrefix(".") }
        var steps: [DropInStep] = []
        for name in names.sorted() {
            let previous = steps.last.map { [$0.name] } ?? builtIns
            steps.append(DropInStep(path: directory + "/" + name, fileName: name, after: previous, timeout: timeout))
        }
        return steps
    }

    public func skipReason(given inputs: StepInputs) -> String? {
        access(path, X_OK) == 0 ? nil : "\(path) is not executable"
    }

    public func run(in context: StepContext, done: @escaping (StepOutcome) -> Void) {
        var command = HelperCommand(arguments: [path], timeout: timeout)
        command.request.environment = context.settings.environment.lines
        context.runHelper(command) { [name] result in
            let output = String(decoding: result.standardOutput + result.standardError, as: UTF8.self)
            for line in output.split(separator: "\n") {
                StandardError.write("berth: [\(name)] \(line)\n")
            }
            if let error = result.spawnError {
                done(.failed("cannot run: \(error)"))
            } else if result.timedOut {
                done(.failed("killed after \(self.timeout.shortDescription)"))
            } else if let status = result.status, status != .exited(0) {
                done(.failed(status.summary))
            } else {
                done(.ok(nil))
            }
        }
    }
}
