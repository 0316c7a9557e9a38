import BerthCore
import Glibc

/// berth invoked as `dumb-init`: dumb-init's options, variables, setsid
/// mode, debug lines and exit codes (dumb-init 1.2.5).
enum DumbInitFace {
    static let version = "1.2.5"

    static func run(arguments: [String], environment: [String: String]) -> Int32 {
        let name = arguments[0]
        var debug = false
        var setsid = true
        var rewrites: [Int32: Int32] = [:]

        let longOptions: [GetOpt.LongOption] = [
            .init(name: "help", takesArgument: false, short: "h"),
            .init(name: "single-child", takesArgument: false, short: "c"),
            .init(name: "rewrite", takesArgument: true, short: "r"),
            .init(name: "verbose", takesArgument: false, short: "v"),
            .init(name: "version", takesArgument: false, short: "V"),
        ]
        let (items, command) = GetOpt.parse(arguments, optionString: "+hvVcr:", longOptions: longOptions)
        for item in items {
            switch item {
            case .option("h", _):
                StandardError.write(help(name))
                return 0
            case .option("v", _): debug = true
            case .option("V", _):
                StandardError.write("dumb-init v\(version)\n")
                return 0
            case .option("c", _): setsid = false
            case .option("r", let argument):
                guard let (from, to) = parseRewrite(argument ?? "") else {
                    StandardError.write("""
                        Usage: -r option takes <signum>:<signum>, where <signum> is between 1 and 31.
                        This option can be specified multiple times.
                        Use --help for full usage.

                        """)
                    return 1
                }
                rewrites[from] = to
            default:
                return 1
            }
        }
        guard !command.isEmpty else {
            StandardError.write("Usage: \(name) [option] program [args]\nTry \(name) --help for full usage.\n")
            return 1
        }
        let say = DumbInitDiagnostics(debug: debug)
        if environment["DUMB_INIT_DEBUG"] == "1" {
            say.debug = true
            say.line("Running in debug mode.")
        }
        if environment["DUMB_INIT_SETSID"] == "0" {
            setsid = false
            say.line("Not running in setsid mode.")
        }
        if setsid {
            // A stopped session must stop as a whole; overridable with -r.
            for signal in [SIGTSTP, SIGTTOU, SIGTTIN] where rewrites[signal] == nil {
                rewrites[signal] = SIGSTOP
            }
        }

        var policy = InitPolicy(command: command)
        policy.isolation = setsid ? .newSession : .sameGroup
        policy.signalTarget = setsid ? .processGroup : .child
        policy.rewrites = rewrites
        policy.subreaper = .never
        policy.afterMainExit = .signalTargetThenExit(SIGTERM)
        policy.detachTerminal = setsid
        policy.suspendAfterJobControlSignal = true
        policy.followChildJobControl = false
        policy.execFailureStatus = 2
        policy.childNote = setsid && say.debug ? "[dumb-init] setsid complete.\n" : nil
        do {
            return try InitProcess(policy: policy, diagnostics: say).run()
        } catch {
            StandardError.write("[dumb-init] Unable to set up signal handling: \(error)\n")
            return 1
        }
    }

    /// `S:R` with S in 1...31 and R in 0...31, read the way sscanf("%d:%d")
    /// reads it (leading blanks and signs allowed, trailing text ignored).
    static func parseRewrite(_ text: String) -> (Int32, Int32)? {
        var rest = Substring(text)
        func integer() -> Int32? {
            rest = rest.drop(while: { $0 == " " || $0 == "\t" })
            var digits = ""
            if let sign = rest.first, sign == "-" || sign == "+" {
                digits.append(sign)
                rest = rest.dropFirst()
            }
            let number = rest.prefix(while: { $0.isASCII && $0.isNumber })
            guard !number.isEmpty else { return nil }
            rest = rest.dropFirst(number.count)
            return Int32(digits + number) ?? Int32.max
        }
        guard let from = integer(), rest.first == ":" else { return nil }
        rest = rest.dropFirst()
        guard let to = integer(), (1...31).contains(from), (0...31).contains(to) else { return nil }
        return (from, to)
    }

    static func help(_ name: String) -> String {
        """
        dumb-init v\(version) (berth \(berthVersion))
        Usage: \(name) [option] command [[arg] ...]

        berth, acting as dumb-init: runs COMMAND as its child, forwards signals to it
        (to its whole session unless --single-child) and reaps zombies.

        Optional arguments:
           -c, --single-child   Run in single-child mode: signals go to the direct
                                child only and no new session is created.
           -r, --rewrite s:r    Forward received signal s as signal r; r = 0 drops it.
                                Repeat for more rewrites.
           -v, --verbose        Print debugging information to stderr.
           -h, --help           Print this help message and exit.
           -V, --version        Print the version and exit.

        Environment: DUMB_INIT_SETSID=0 (single-child mode), DUMB_INIT_DEBUG=1 (-v).

        """
    }
}

/// dumb-init's voice: `[dumb-init] message` on stderr, debug lines only in
/// debug mode.
final class DumbInitDiagnostics: InitDiagnostics {
    var debug: Bool

    init(debug: Bool) { self.debug = debug }

    var reportsReapedOrphans: Bool { debug }

    func line(_ text: String) {
        if debug { StandardError.write("[dumb-init] \(text)\n") }
    }

    func detachedTerminal(ok: Bool, error: Int32, sessionLeader: Bool) {
        if !ok {
            line("Unable to detach from controlling tty (errno=\(error) \(errorText(error))).")
        } else if sessionLeader {
            line("Detached from controlling tty, ignoring the first SIGHUP and SIGCONT we receive.")
        } else {
            line("Detached from controlling tty, but was not session leader.")
        }
    }
    func spawned(pid: pid_t, command: [String]) { line("Child spawned with PID \(pid).") }
    func spawnFailed(command: String, error: SpawnError) {
        StandardError.write("[dumb-init] \(command): \(error)\n")
    }
    var reportsChildSignals: Bool { debug }
    func receivedChildSignal() { line("Received signal \(SIGCHLD).") }
    func received(_ signal: ReceivedSignal) { line("Received signal \(signal.number).") }
    func ignoredHandOff(_ signal: Int32) { line("Ignoring tty hand-off signal \(signal).") }
    func translated(_ signal: Int32, to: Int32) { line("Translating signal \(signal) to \(to).") }
    func forwarded(_ signal: Int32, target: pid_t, delivered: Bool) { line("Forwarded signal \(signal) to children.") }
    func notForwarded(_ signal: Int32, reason: NotForwardedReason) {
        if case .rewrittenToZero = reason { line("Not forwarding signal \(signal) to children (ignored).") }
    }
    func suspendingSelf() { line("Suspending self due to TTY signal.") }
    func reaped(pid: pid_t, status: ChildStatus, isMain: Bool) {
        switch status {
        case .exited(let code): line("A child with PID \(pid) exited with exit status \(code).")
        case .signaled(let signal, _): line("A child with PID \(pid) was terminated by signal \(signal).")
        default: break
        }
    }
    func goodbye(exitCode: Int32, orphansReaped: Int) { line("Child exited with status \(exitCode). Goodbye.") }
}
