import BerthCore
import AICLIPlugin
import BerthProvisioning
import CodeServerPlugin
import GitHubAuthPlugin
import Glibc
import SSHDPlugin
import SSHKeysPlugin
import SudoPlugin
import TokenRefreshPlugin

/// Provisioning as berth's own face runs it, before the child starts.
enum NativeProvisioning {
    static func allSteps() -> [ProvisioningStep] {
        let github = GitHubLogin()
        return [SSHKeysStep(), SSHDStep(), SudoStep(), GitHubAuthStep(login: github), TokenRefreshStep(login: github), AICLIStep(), CodeServerStep()]
    }

    /// The variables that ask for some step (each also as NAME_FILE): the
    /// union of the steps' `inputVariables`, which a test keeps equal.
    static let requestingVariables = [
        "SSH_PUBLIC_KEY", "SSH_PRIVATE_KEY", "GITHUB_TOKEN", "GH_TOKEN", "GITHUB_TOKEN_URL",
        "ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY",
        "CODE_SERVER_PASSWORD", "CODE_SERVER_AUTH", "CODE_SERVER_BIND", "BERTH_SUDO",
    ]

    /// The common `berth -- CMD` with nothing to provision, decided without
    /// building a single step: touching six plugins' code costs a plain
    /// init ~10 page faults and ~0.1 ms at every start (measured).
    /// Tools that make a step run on their own (code-server) and drop-ins
    /// count too; BERTH_DISABLE is checked for unknown names on the full path.
    static func mayHaveWork(_ settings: Settings) -> Bool {
        mayHaveWork(value: settings.value, isSet: settings.isSet)
    }

    /// `value` reads one variable (nil when unset or empty) and `isSet`
    /// asks for NAME or NAME_FILE, as `Settings` does: a plain start asks
    /// with getenv and builds no dictionary.
    static func mayHaveWork(value: (String) -> String?, isSet: (String) -> Bool) -> Bool {
        if requestingVariables.contains(where: isSet) || value("BERTH_DISABLE") != nil { return true }
        if isExecutableOnPath("code-server", searchPath: value("PATH") ?? defaultSearchPath) { return true }
        return directoryHasEntry(value("BERTH_PLUGINS_DIR") ?? "/etc/berth/plugins.d")
    }

    struct Plan {
        var preparation: any InitPolicy.Preparation
        var childEnvironment: [String]
    }

    /// nil when no step has anything to do: berth is then a plain init and
    /// writes nothing.
    /// `only`: run just that step (`berth provision --only STEP`).
    /// `onResults` sees every outcome once the run is over.
    /// `persistent`: berth goes on running the command afterwards, so
    /// periodic steps (token-refresh) keep their timers.
    static func plan(environment: [String: String], verbosity: Int, only: String? = nil, persistent: Bool = false,
                     onResults: @escaping ([StepResult]) -> Void = { _ in }) throws(UsageError) -> Plan? {
        let settings = Settings(environment: environment)
        if only == nil && !mayHaveWork(settings) { return nil }
        let builtIns = allSteps()
        let names = builtIns.map(\.name)
        let strict: Bool
        let timeout: Duration
        do {
            strict = try settings.boolean("BERTH_STRICT", default: false)
        } catch {
            throw UsageError(message: error.message)
        }
        if let text = settings.value("BERTH_STEP_TIMEOUT") {
            guard let seconds = NativeFace.parseSeconds(text), seconds > .zero else {
                throw UsageError(message: "BERTH_STEP_TIMEOUT='\(text)': expected seconds, like 60")
            }
            timeout = seconds
        } else {
            timeout = .seconds(60)
        }
        let runDirectory = settings.value("BERTH_RUN_DIR", default: "/run/berth")
        let dropIns = DropInStep.scan(settings.value("BERTH_PLUGINS_DIR", default: "/etc/berth/plugins.d"), after: names, timeout: timeout)
        let steps: [ProvisioningStep] = builtIns + dropIns
        let disabled = Set(settings.list("BERTH_DISABLE"))
        for name in disabled where !steps.contains(where: { $0.name == name }) {
            throw UsageError(message: "BERTH_DISABLE: unknown step '\(name)' (steps: \(steps.map(\.name).joined(separator: ", ")))")
        }
        if let only {
            guard steps.contains(where: { $0.name == only }) else {
                throw UsageError(message: "--only '\(only)': unknown step (steps: \(steps.map(\.name).joined(separator: ", ")))")
            }
        }
        var excluded: [String: String] = [:]
        if let only {
            for step in steps where step.name != only { excluded[step.name] = "not selected (--only \(only))" }
        }
        // Nothing to do is the common `berth -- CMD`: decide it before any
        // file is read (a step that needs the user fails or skips later).
        let notLookedUp = StepInputs(settings: settings, user: .failure(SettingError("not looked up")))
        let wanted = steps.filter { !disabled.contains($0.name) && excluded[$0.name] == nil }
        guard wanted.contains(where: { $0.skipReason(given: notLookedUp) == nil || $0.inputVariables.contains(where: settings.isSet) }) else {
            return nil
        }
        let userName = settings.value("BERTH_USER", default: "dev8")
        let user = Result { () throws(SettingError) in try UserAccount.lookup(userName) }
        let inputs = StepInputs(settings: settings, user: user)
        let secrets = Set(builtIns.flatMap(\.secretVariables))
        let childEnvironment = environment.filter { !secrets.contains($0.key) }.map { "\($0.key)=\($0.value)" }.sorted()

        let preparation = Run(steps: steps, inputs: inputs, persistent: persistent, disabled: disabled, excluded: excluded,
                              timeout: timeout, strict: strict, runDirectory: runDirectory, verbosity: verbosity, onResults: onResults)
        return Plan(preparation: preparation, childEnvironment: childEnvironment)
    }

    /// One provisioning run on berth's loop, before the child starts.
    final class Run: InitPolicy.Preparation {
        let steps: [ProvisioningStep]
        let inputs: StepInputs
        let persistent: Bool
        let disabled: Set<String>
        let excluded: [String: String]
        let timeout: Duration
        let strict: Bool
        let runDirectory: String
        let verbosity: Int
        let onResults: ([StepResult]) -> Void
        private var provisioner: Provisioner?

        init(steps: [ProvisioningStep], inputs: StepInputs, persistent: Bool, disabled: Set<String>, excluded: [String: String],
             timeout: Duration, strict: Bool, runDirectory: String, verbosity: Int, onResults: @escaping ([StepResult]) -> Void) {
            self.steps = steps
            self.inputs = inputs
            self.persistent = persistent
            self.disabled = disabled
            self.excluded = excluded
            self.timeout = timeout
            self.strict = strict
            self.runDirectory = runDirectory
            self.verbosity = verbosity
            self.onResults = onResults
        }

        func start(_ loop: EventLoop, _ proceed: @escaping (Bool) -> Void) {
            let context = StepContext(loop: loop, inputs: inputs, persistent: persistent)
            // Not fatal: the final report says what it can.
            try? ProvisionReport.writeInProgress(to: runDirectory + "/provision.json")
            do {
                provisioner = try Provisioner(steps: steps, context: context, disabled: disabled, excluded: excluded, timeout: timeout)
            } catch {
                StandardError.write("berth: provisioning: \(error)\n")
                proceed(!strict)
                return
            }
            provisioner?.start { [self] results in
                onResults(results)
                NativeProvisioning.finish(results, runDirectory: runDirectory, strict: strict, verbosity: verbosity, proceed: proceed)
            }
        }

        func cancel() { provisioner?.cancel() }
    }

    private static func finish(_ results: [StepResult], runDirectory: String, strict: Bool, verbosity: Int, proceed: (Bool) -> Void) {
        do {
            try ProvisionReport.write(results, to: runDirectory + "/provision.json")
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
