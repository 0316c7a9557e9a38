import BerthCore
import BerthPlugins
import BerthProvisioning
import Glibc

/// Provisioning as berth's own face runs it, before the child starts: the
/// registry's steps, then the image's drop-ins, planned from the one
/// configuration read at start.
enum NativeProvisioning {
    /// nil when no step has anything to do: berth is then a plain init and
    /// writes nothing.
    /// `only`: run just that step (`berth provision --only STEP`).
    /// `onResults` sees every outcome once the run is over.
    /// `persistent`: berth goes on running the command afterwards, so
    /// periodic steps (token-refresh) keep their timers.
    static func plan(_ configuration: Configuration, verbosity: Int, only: String? = nil, persistent: Bool = false,
                     onResults: @escaping ([StepResult]) -> Void = { _ in }) throws(UsageError) -> (any InitPolicy.Preparation)? {
        guard let environment = configuration.environment else { return nil }
        let settings = Settings(environment)
        let plugins = registry.compactMap { plugin in plugin.makeStep().map { (plugin, $0) } }
        let builtIns = plugins.map(\.1)
        let dropIns = DropInStep.scan(configuration.pluginsDirectory, after: builtIns.map(\.name), timeout: configuration.stepTimeout)
        let steps: [ProvisioningStep] = builtIns + dropIns
        let disabled = Set(configuration.disabledSteps)
        for name in configuration.disabledSteps where !steps.contains(where: { $0.name == name }) {
            throw UsageError(message: "BERTH_DISABLE: unknown step '\(name)' (steps: \(steps.map(\.name).joined(separator: ", ")))")
        }
        var excluded: [String: String] = [:]
        if let only {
            guard steps.contains(where: { $0.name == only }) else {
                throw UsageError(message: "--only '\(only)': unknown step (steps: \(steps.map(\.name).joined(separator: ", ")))")
            }
            for step in steps where step.name != only { excluded[step.name] = "not selected (--only \(only))" }
        }
        // Nothing to do is decided before any file is read (a step that
        // needs the user fails or skips later). A step whose plugin's
        // variables ask for it runs even to skip, so the reason is reported.
        let notLookedUp = StepInputs(settings: settings, user: .failure(SettingError("not looked up")))
        let asked = Set(plugins.filter { plugin, _ in plugin.requestingVariables.contains(where: settings.isSet) }.map(\.1.name))
        let wanted = steps.filter { !disabled.contains($0.name) && excluded[$0.name] == nil }
        guard wanted.contains(where: { asked.contains($0.name) || $0.skipReason(given: notLookedUp) == nil }) else {
            return nil
        }
        let user = Result { () throws(SettingError) in try UserAccount.lookup(configuration.workspaceUserName) }
        let run = Run(steps: steps, inputs: StepInputs(settings: settings, user: user), persistent: persistent, disabled: disabled,
                      excluded: excluded, configuration: configuration, verbosity: verbosity, onResults: onResults)
        run.fingerprints = Dictionary(plugins.map { plugin, step in (step.name, inputsFingerprint(plugin, settings)) }) { first, _ in first }
        return run
    }

    /// What a step's plugin reads, as it is now: option values, and for a
    /// secret only whether it is set (a secret's hash could be guessed).
    static func inputsFingerprint(_ plugin: any Plugin, _ settings: Settings) -> String {
        inputFingerprint(plugin.variables.map { variable in
            variable.isSecret ? "\(variable.name) \(settings.isSet(variable.name) ? "set" : "unset")"
                : "\(variable.name)=\(settings.value(variable.name) ?? "")"
        }.joined(separator: "\n"))
    }

    /// One provisioning run on berth's loop, before the child starts.
    final class Run: InitPolicy.Preparation {
        let steps: [ProvisioningStep]
        let inputs: StepInputs
        let persistent: Bool
        let disabled: Set<String>
        let excluded: [String: String]
        let configuration: Configuration
        let verbosity: Int
        let onResults: ([StepResult]) -> Void
        /// Each built-in step's inputs fingerprint, for the report.
        var fingerprints: [String: String] = [:]
        private var provisioner: Provisioner?

        init(steps: [ProvisioningStep], inputs: StepInputs, persistent: Bool, disabled: Set<String>, excluded: [String: String],
             configuration: Configuration, verbosity: Int, onResults: @escaping ([StepResult]) -> Void) {
            self.steps = steps
            self.inputs = inputs
            self.persistent = persistent
            self.disabled = disabled
            self.excluded = excluded
            self.configuration = configuration
            self.verbosity = verbosity
            self.onResults = onResults
        }

        func start(_ loop: EventLoop, _ proceed: @escaping (Bool) -> Void) {
            let context = StepContext(loop: loop, inputs: inputs, persistent: persistent)
            // Not fatal: the final report says what it can.
            let runDirectory = configuration.runDirectory
            let strict = configuration.strict
            try? ProvisionReport.writeInProgress(to: runDirectory + "/provision.json")
            do {
                provisioner = try Provisioner(steps: steps, context: context, disabled: disabled, excluded: excluded, timeout: configuration.stepTimeout)
            } catch {
                StandardError.write("berth: provisioning: \(error)\n")
                proceed(!strict)
                return
            }
            provisioner?.start { [self] results in
                onResults(results)
                NativeProvisioning.finish(results, inputs: fingerprints, runDirectory: runDirectory, strict: strict, verbosity: verbosity,
                                          proceed: proceed)
            }
        }

        func cancel() { provisioner?.cancel() }
    }

    private static func finish(_ results: [StepResult], inputs: [String: String], runDirectory: String, strict: Bool, verbosity: Int,
                               proceed: (Bool) -> Void) {
        do {
            try ProvisionReport.write(results, inputs: inputs, to: runDirectory + "/provision.json")
        } catch {
            StandardError.write("berth: cannot write the provisioning report: \(error)\n")
        }
        let failed = results.contains { $0.outcome.isFailure }
        if verbosity >= 1 || failed {
            StandardError.write(ProvisionReport.summary(results).split(separator: "\n").map { "berth: \($0)\n" }.joined())
        }
        if strict && failed {
            StandardError.write("berth: BERTH_STRICT=1 and a provisioning step failed: not starting the command\n")
            proceed(false)
        } else {
            proceed(true)
        }
    }
}
