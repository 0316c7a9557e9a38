import ArgumentParser
import BerthCore

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
