import ArgumentParser
import BerthCore
import BerthSystemd
import BerthPlugins
import BerthProvisioning
import Glibc

public let berthVersion = "0.1.0"

/// `berth [OPTIONS] [--] COMMAND [ARGS...]`. Every option can also come from
/// a BERTH_* variable; the command line wins.
struct NativeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "berth",
        abstract: "PID 1 for developer-workspace containers.",
        discussion: """
        Runs COMMAND as its child, forwards every signal to it, reaps every \
        zombie in the container and exits with the child's status (128+N when \
        a signal N killed it). When the child is gone, the remaining processes \
        get SIGTERM, then SIGKILL after the grace period.

        Environment: BERTH_VERBOSITY, BERTH_KILL_GROUP, BERTH_REWRITE (comma \
        separated SRC:DST), BERTH_REMAP_EXIT (comma separated codes), \
        BERTH_PDEATH_SIGNAL, BERTH_KILL_GRACE, BERTH_WARN_ON_REAP.
        """,
        version: berthVersion
    )

    @Flag(name: .short, help: "More output; repeat for more (BERTH_VERBOSITY=0..3).")
    var verbose: Int

    @Flag(name: [.customShort("g"), .long], help: "Send signals to the child's process group, not just the child (BERTH_KILL_GROUP=1).")
    var killGroup = false

    @Option(name: [.customShort("r"), .long], help: ArgumentHelp("Forward signal SRC as DST; DST 0 drops it. Names or numbers, repeatable.", valueName: "SRC:DST"))
    var rewrite: [String] = []

    @Option(name: [.customShort("e"), .customLong("remap-exit")], help: ArgumentHelp("Exit 0 when the child exits with CODE (0-255), repeatable.", valueName: "CODE"))
    var remapExit: [String] = []

    @Option(name: [.customShort("p"), .customLong("pdeath-signal")], help: ArgumentHelp("Send SIGNAL to berth (and so to the child) when berth's parent dies.", valueName: "SIGNAL"))
    var parentDeathSignal: String?

    @Option(name: .customLong("kill-grace"), help: ArgumentHelp("Time between SIGTERM and SIGKILL for processes left after the child exits: 5, 0.5, 500ms, 1m (default 5s).", valueName: "DURATION"))
    var killGrace: String?

    @Flag(name: [.customShort("w"), .customLong("warn-on-reap")], help: "Log every orphan reaped (BERTH_WARN_ON_REAP=1).")
    var warnOnReap = false

    @Argument(parsing: .postTerminator, help: ArgumentHelp("The program to run as berth's child, and its arguments.", valueName: "COMMAND"))
    var command: [String] = []

    /// Options above that take a value, so `splitCommand` knows where
    /// berth's options end and COMMAND begins. Kept beside the declarations.
    static let optionsTakingValue: Set<String> = [
        "-r", "--rewrite", "-e", "--remap-exit", "-p", "--pdeath-signal", "--kill-grace",
    ]

    /// berth's options stop at the first operand (like tini under
    /// POSIXLY_CORRECT): `berth ls -l` runs `ls -l`. Returns berth's part
    /// with a `--` before the command, the form the parser expects.
    static func splitCommand(_ arguments: [String]) -> [String] {
        var index = 0
        while index < arguments.count {
            let token = arguments[index]
            if token == "--" { return arguments }
            guard token.hasPrefix("-"), token != "-" else { break }
            if optionsTakingValue.contains(token) {
                index += 2
                continue
            }
            index += 1
        }
        index = min(index, arguments.count)
        return Array(arguments[..<index]) + ["--"] + arguments[index...]
    }
}

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

/// A bad argument or variable: one line naming it, exit status 2.
struct UsageError: Error {
    let message: String
}

struct NativeSettings {
    var policy: InitPolicy
    var verbosity: Int
    var warnOnReap: Bool
}

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
            let inherited = configuration.inheritedByChildren(variable: environmentValue, isSet: environmentIsSet)
            policy.beforeChild = try NativeProvisioning.plan(configuration, verbosity: verbosity, persistent: true)
            policy.supervision = try NativeServices.plan(configuration, inherited: inherited, verbosity: verbosity)
            policy.childEnvironment = CommandIdentity.apply(configuration, inherited: inherited, to: &policy)
        } catch {
            StandardError.write("berth: \(error.message)\n")
            return 2
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

/// Reads BERTH_* variables strictly (with `Settings`' parsers, so
/// every variable parses alike): a value that does not parse is an error
/// naming the variable, never a silent default.
struct EnvironmentReader {
    let variable: (String) -> String?
    init(_ variable: @escaping (String) -> String?) { self.variable = variable }

    /// A non-empty value, or nil (as `Settings.value`).
    func value(_ name: String) -> String? {
        guard let value = variable(name), !value.isEmpty else { return nil }
        return value
    }

    func list(_ name: String) -> [String] { commaSeparated(value(name)) }

    func boolean(_ name: String) throws(UsageError) -> Bool? {
        guard let text = value(name) else { return nil }
        do {
            return try Settings.boolean(text, variable: name)
        } catch {
            throw UsageError(message: error.message)
        }
    }

    func integer(_ name: String, range: ClosedRange<Int>) throws(UsageError) -> Int? {
        guard let text = value(name) else { return nil }
        guard let number = Int(text), range.contains(number) else {
            throw UsageError(message: "\(name)='\(text)': expected a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return number
    }
}

/// berth's own voice: `berth: ...` on stderr; 0 errors, 1 warnings
/// (default), 2 info, 3 debug.
struct NativeDiagnostics: InitDiagnostics {
    let verbosity: Int
    let warnOnReap: Bool

    var reportsReapedOrphans: Bool { verbosity >= (warnOnReap ? 1 : 3) }

    private func log(_ level: Int, _ text: @autoclosure () -> String) {
        if verbosity >= level { StandardError.write("berth: \(text())\n") }
    }

    func registeredSubreaper() {
        log(2, "not PID 1 (pid \(getpid())): registered as child subreaper so orphans are still reaped")
    }
    func subreaperFailed(_ error: Int32) {
        log(1, "not PID 1 and could not register as child subreaper (\(errorText(error))): orphans will not be reaped")
    }
    func spawned(pid: pid_t, command: [String]) { log(2, "started '\(command[0])' as pid \(pid)") }
    func spawnFailed(command: String, error: SpawnError) {
        log(0, error.step == .exec ? "cannot run '\(command)': \(error)" : "cannot start '\(command)': \(error)")
    }
    func received(_ signal: ReceivedSignal) {
        log(3, "received \(Signals.name(of: signal.number)) from pid \(signal.senderPID)")
    }
    func translated(_ signal: Int32, to: Int32) {
        log(3, "rewriting \(Signals.name(of: signal)) to \(to == 0 ? "nothing" : Signals.name(of: to))")
    }
    func forwarded(_ signal: Int32, target: pid_t, delivered: Bool) {
        let whom = target < 0 ? "process group \(-target)" : "pid \(target)"
        log(delivered ? 3 : 1, delivered ? "forwarded \(Signals.name(of: signal)) to \(whom)" : "could not forward \(Signals.name(of: signal)) to \(whom): \(errorText(errno))")
    }
    func notForwarded(_ signal: Int32, reason: NotForwardedReason) {
        log(3, "not forwarding \(Signals.name(of: signal)): \(reason)")
    }
    func childStopped(by signal: Int32) {
        log(2, getpid() == 1 ? "child stopped by \(Signals.name(of: signal)); PID 1 cannot be suspended, so it is continued" : "child stopped by \(Signals.name(of: signal)); suspending berth with it")
    }
    func reaped(pid: pid_t, status: ChildStatus, isMain: Bool) {
        guard !isMain else { return }
        log(warnOnReap ? 1 : 3, "reaped orphan pid \(pid) (\(status.summary))")
    }
    func mainExited(status: ChildStatus, exitCode: Int32) {
        log(2, "child \(status.summary); berth will exit with \(exitCode)")
    }
    func terminatingOthers(grace: Duration) {
        log(2, "sent SIGTERM to the remaining processes; SIGKILL in \(grace)")
    }
    func goodbye(exitCode: Int32, orphansReaped: Int) {
        log(2, "exiting with \(exitCode); reaped \(orphansReaped) orphan\(orphansReaped == 1 ? "" : "s") along the way")
    }
    func stoppedBeforeChild(by signal: Int32) {
        log(1, "\(Signals.name(of: signal)) before the command started: provisioning stopped, exiting")
    }
    func killingOthers() {
        log(1, "processes still running after the grace period: sending SIGKILL")
    }
}
