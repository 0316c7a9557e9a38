import BerthCore
import Glibc

/// berth invoked as `tini`: tini's options, variables, defaults, messages
/// and exit codes (tini 0.19).
enum TiniFace {
    static let version = "tini version 0.19.0 (berth \(berthVersion))"

    static func run(arguments: [String], environment: [String: String]) -> Int32 {
        let name = basename(arguments[0])
        if arguments.count == 2 && arguments[1] == "--version" {
            StandardOutput.write(version + "\n")
            return 0
        }
        var verbosity = 1
        var subreaper = false
        var killGroup = false
        var warnOnReap = false
        var parentDeathSignal: Int32 = 0
        var remapped: Set<Int32> = []
        let say = TiniDiagnostics(verbosity: { verbosity }, warnOnReap: { warnOnReap })

        // No leading '+': like tini, GNU getopt permutes unless POSIXLY_CORRECT is set.
        let (items, command) = GetOpt.parse(arguments, optionString: "p:hvwgle:s")
        for item in items {
            switch item {
            case .option("h", _):
                StandardOutput.write(usage(name))
                return 0
            case .option("s", _): subreaper = true
            case .option("p", let argument):
                guard let text = argument, text.hasPrefix("SIG"), let signal = Signals.parse(text) else {
                    say.fatal("Not a valid option for -p: \(argument ?? "")")
                    return 1
                }
                parentDeathSignal = signal
            case .option("v", _): verbosity += 1
            case .option("w", _): warnOnReap = true
            case .option("g", _): killGroup = true
            case .option("e", let argument):
                guard let text = argument, let code = Int32(text), (0...255).contains(code) else {
                    say.fatal("Not a valid option for -e: \(argument ?? "")")
                    return 1
                }
                remapped.insert(code)
            case .option("l", _):
                StandardOutput.write(license)
                return 0
            default:
                StandardError.write(usage(name))
                return 1
            }
        }
        guard !command.isEmpty else {
            StandardError.write(usage(name))
            return 1
        }
        // tini checks presence, not value, for these two.
        if environment["TINI_SUBREAPER"] != nil { subreaper = true }
        if environment["TINI_KILL_PROCESS_GROUP"] != nil { killGroup = true }
        if let text = environment["TINI_VERBOSITY"] { verbosity = atoiLike(text) }

        var policy = InitPolicy(command: command)
        policy.isolation = .newProcessGroup
        policy.signalTarget = killGroup ? .processGroup : .child
        policy.exitCodesMappedToZero = remapped
        policy.parentDeathSignal = parentDeathSignal
        policy.subreaper = .onRequest(subreaper)
        policy.afterMainExit = .exitNow
        policy.dropTerminalStopSignals = true
        policy.followChildJobControl = false
        do {
            return try InitProcess(policy: policy, diagnostics: say).run()
        } catch {
            say.fatal("Failed to set up signal handling: \(error)")
            return 1
        }
    }

    static func usage(_ name: String) -> String {
        """
        \(name) (\(version))
        Usage: \(name) [OPTIONS] PROGRAM -- [ARGS] | --version

        Execute a program under the supervision of a valid init process (\(name))

        Command line options:

          --version: Show version and exit.
          -h: Show this help message and exit.
          -s: Register as a process subreaper (requires Linux >= 3.4).
          -p SIGNAL: Trigger SIGNAL when parent dies, e.g. "-p SIGKILL".
          -v: Generate more verbose output. Repeat up to 3 times.
          -w: Print a warning when processes are getting reaped.
          -g: Send signals to the child's process group.
          -e EXIT_CODE: Remap EXIT_CODE (from 0 to 255) to 0 (can be repeated).
          -l: Show license and exit.

        Environment variables:

          TINI_SUBREAPER: Register as a process subreaper (requires Linux >= 3.4).
          TINI_VERBOSITY: Set the verbosity level (default: 1).
          TINI_KILL_PROCESS_GROUP: Send signals to the child's process group.


        """
    }

    static let license = "berth (acting as tini) is released under the MIT License; see the LICENSE file in its source.\n"
}

/// atoi: leading digits (with sign), anything else is 0.
func atoiLike(_ text: String) -> Int {
    var digits = text.drop(while: { $0 == " " })
    var sign = 1
    if digits.first == "-" || digits.first == "+" {
        if digits.first == "-" { sign = -1 }
        digits = digits.dropFirst()
    }
    return sign * (Int(String(digits.prefix(while: { $0.isASCII && $0.isNumber }))) ?? 0)
}

func basename(_ path: String) -> String {
    path.split(separator: "/").last.map(String.init) ?? path
}

/// tini's voice: `[LEVEL tini (pid)] message`; warnings and fatals on
/// stderr, info and below on stdout.
struct TiniDiagnostics: InitDiagnostics {
    let verbosity: () -> Int
    let warnOnReap: () -> Bool

    var reportsReapedOrphans: Bool { verbosity() >= (warnOnReap() ? 1 : 3) }

    private func out(_ level: Int, _ tag: String, _ text: String) {
        guard verbosity() >= level else { return }
        let line = "[\(tag) tini (\(getpid()))] \(text)\n"
        if level <= 1 { StandardError.write(line) } else { StandardOutput.write(line) }
    }

    func fatal(_ text: String) { StandardError.write("[FATAL tini (\(getpid()))] \(text)\n") }

    func cannotReapOrphans() {
        out(1, "WARN ", """
            Tini is not running as PID 1 and isn't registered as a child subreaper.
            Zombie processes will not be re-parented to Tini, so zombie reaping won't work.
            To fix the problem, use the -s option or set the environment variable TINI_SUBREAPER to register Tini as a child subreaper, or run Tini as PID 1.
            """)
    }
    func registeredSubreaper() { out(4, "TRACE", "Registered as child subreaper") }
    func subreaperFailed(_ error: Int32) { fatal("Failed to register as child subreaper: \(errorText(error))") }
    func spawned(pid: pid_t, command: [String]) {
        out(2, "INFO ", "Spawned child process '\(command[0])' with pid '\(pid)'")
    }
    func spawnFailed(command: String, error: SpawnError) {
        fatal(error.step == .exec ? "exec \(command) failed: \(error)" : "\(error)")
    }
    var reportsChildSignals: Bool { verbosity() >= 3 }
    func receivedChildSignal() { out(3, "DEBUG", "Received SIGCHLD") }
    func received(_ signal: ReceivedSignal) {
        out(3, "DEBUG", "Passing signal: '\(String(cString: strsignal(signal.number)))'")
    }
    func forwarded(_ signal: Int32, target: pid_t, delivered: Bool) {
        if !delivered { out(1, "WARN ", "Child was dead when forwarding signal") }
    }
    func reaped(pid: pid_t, status: ChildStatus, isMain: Bool) {
        out(3, "DEBUG", "Reaped child with pid: '\(pid)'")
        if !isMain && warnOnReap() { out(1, "WARN ", "Reaped zombie process with pid=\(pid)") }
    }
    func mainExited(status: ChildStatus, exitCode: Int32) {
        switch status {
        case .exited(let code): out(2, "INFO ", "Main child exited normally (with status '\(code)')")
        case .signaled(let signal, _):
            out(2, "INFO ", "Main child exited with signal (with signal '\(String(cString: strsignal(signal)))')")
        default: break
        }
    }
    func goodbye(exitCode: Int32, orphansReaped: Int) { out(4, "TRACE", "Exiting: child has exited") }
}
