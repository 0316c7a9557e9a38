import BerthCore
import BerthPlugins
import BerthSystemd
import Glibc

enum NativeFace {
    static func run(arguments: [String]) -> Int32 {
        let parsed: NativeOptions
        do {
            parsed = try parse(arguments)
        } catch {
            let code = NativeCommand.exitCode(for: error)
            if code == .success {
                StandardOutput.write(NativeCommand.fullMessage(for: error) + "\n")
                return 0
            }
            StandardError.write("berth: \(NativeCommand.message(for: error)) (see berth --help)\n")
            return 2
        }
        // Read once; a plain start reads a dozen variables with getenv and
        // builds no environment (see Configuration.mayHaveWork).
        let configuration: Configuration
        var policy: InitPolicy
        do {
            configuration = try Configuration.read(parsed, variable: environmentValue, probe: .process)
            policy = configuration.initSettings.policy
            let verbosity = configuration.initSettings.verbosity
            let inherited = configuration.inheritedByChildren(isSet: environmentIsSet)
            policy.beforeChild = try NativeProvisioning.plan(configuration, verbosity: verbosity, persistent: true)
            policy.supervision = try NativeServices.plan(configuration, inherited: inherited, verbosity: verbosity)
            policy.childEnvironment = CommandIdentity.apply(configuration, inherited: inherited, to: &policy)
        } catch {
            StandardError.write("berth: \(error.message)\n")
            return 2
        }
        if configuration.initSettings.verbosity >= 1 {
            for warning in UnknownVariables.warnings() { StandardError.write("berth: \(warning)\n") }
        }
        if configuration.hasServiceManager {
            policy.tellManager = { ServiceManager.notify($0) }
        }
        if policy.command.isEmpty && policy.supervision == nil {
            StandardError.write("berth: missing COMMAND (usage: berth [OPTIONS] [--] COMMAND [ARGS...]); with no command berth needs services to run\n")
            return 2
        }
        let diagnostics = NativeDiagnostics(verbosity: configuration.initSettings.verbosity, warnOnReap: configuration.initSettings.warnOnReap)
        do {
            return try InitProcess(policy: policy, diagnostics: diagnostics).run()
        } catch {
            StandardError.write("berth: cannot set up the event loop: \(error)\n")
            return 1
        }
    }

    /// With no option before the command (`berth -- CMD`, the usual
    /// ENTRYPOINT) there is nothing for the parser to do: skipping it keeps
    /// its reflection-driven code paths out of PID 1's resident memory.
    static func parse(_ arguments: [String]) throws -> NativeOptions {
        let split = NativeCommand.splitCommand(arguments)
        if split.first == "--" {
            return NativeOptions(command: Array(split.dropFirst()))
        }
        return try NativeCommand.parse(split).options
    }

    static func resolve(_ command: NativeOptions, environment: [String: String]) throws(UsageError) -> NativeSettings {
        try resolve(command, variable: { environment[$0] })
    }

    /// `variable` reads one variable (nil when unset).
    static func resolve(_ command: NativeOptions, variable: @escaping (String) -> String?) throws(UsageError) -> NativeSettings {
        // An empty command is allowed here: berth then runs its services
        // until stopped (checked once the services are known).
        let argv = command.command

        var policy = InitPolicy(command: argv)
        let env = EnvironmentReader(variable)

        let verbosity = command.verbose > 0 ? command.verbose + 1 : try env.integer("BERTH_VERBOSITY", range: 0...3) ?? 1
        let killGroupFromEnvironment = try env.boolean("BERTH_KILL_GROUP") ?? false
        if command.killGroup || killGroupFromEnvironment {
            policy.signalTarget = .processGroup
        }
        let rewrites = command.rewrite.isEmpty ? env.list("BERTH_REWRITE").map { ("BERTH_REWRITE='\($0)'", $0) } : command.rewrite.map { ("--rewrite '\($0)'", $0) }
        for (source, text) in rewrites {
            let (from, to) = try parseRewrite(text, source: source)
            policy.rewrites[from] = to
        }
        let remaps = command.remapExit.isEmpty ? env.list("BERTH_REMAP_EXIT").map { ("BERTH_REMAP_EXIT='\($0)'", $0) } : command.remapExit.map { ("--remap-exit '\($0)'", $0) }
        for (source, text) in remaps {
            guard let code = Int32(text), (0...255).contains(code) else {
                throw UsageError(message: "\(source): exit code must be a whole number from 0 to 255")
            }
            policy.exitCodesMappedToZero.insert(code)
        }
        if let text = command.parentDeathSignal ?? env.value("BERTH_PDEATH_SIGNAL") {
            let source = command.parentDeathSignal != nil ? "--pdeath-signal '\(text)'" : "BERTH_PDEATH_SIGNAL='\(text)'"
            guard let signal = Signals.parse(text) else {
                throw UsageError(message: "\(source): unknown signal (use a name like TERM or a number)")
            }
            policy.parentDeathSignal = signal
        }
        if let text = command.killGrace ?? env.value("BERTH_KILL_GRACE") {
            let source = command.killGrace != nil ? "--kill-grace" : "BERTH_KILL_GRACE"
            do {
                policy.afterMainExit = .terminateEveryone(grace: try Settings.duration(text, variable: source))
            } catch {
                throw UsageError(message: error.message)
            }
        }
        let warnFromEnvironment = try env.boolean("BERTH_WARN_ON_REAP") ?? false
        let warnOnReap = command.warnOnReap || warnFromEnvironment
        return NativeSettings(policy: policy, verbosity: verbosity, warnOnReap: warnOnReap)
    }

    static func parseRewrite(_ text: String, source: String) throws(UsageError) -> (Int32, Int32) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2 else {
            throw UsageError(message: "\(source): expected SRC:DST, like TERM:INT or 15:0")
        }
        guard let from = Signals.parse(String(parts[0])), from != SIGKILL, from != SIGSTOP, from != SIGCHLD else {
            throw UsageError(message: "\(source): '\(parts[0])' is not a signal berth can receive")
        }
        if parts[1] == "0" { return (from, 0) }
        guard let to = Signals.parse(String(parts[1])) else {
            throw UsageError(message: "\(source): '\(parts[1])' is not a signal (0 drops it)")
        }
        return (from, to)
    }
}
