import ArgumentParser
import BerthCore
import BerthInit

/// berth's command line: `berth VERB ...` for the verbs below, parsed by
/// swift-argument-parser; anything else goes to the init unchanged. The
/// common `berth -- CMD` and `berth CMD` pay a comparison of argv[1] with
/// the verb names before the init runs (start-up is measured in
/// instructions, bench/run).
/// A program named like a verb runs as `berth -- NAME`.
public func berthCommandLine(arguments: [String]) -> Int32 {
    guard arguments.count > 1 else { return berthMain(arguments: arguments) }
    if arguments.count == 2, arguments[1] == "--help" || arguments[1] == "-h", Face(invokedAs: arguments[0]) == .native {
        return initHelpWithVerbs(arguments: arguments)
    }
    guard BerthVerbs.isVerb(arguments[1]), Face(invokedAs: arguments[0]) == .native else {
        return berthMain(arguments: arguments)
    }
    return BerthVerbs.run(Array(arguments.dropFirst()))
}

/// The root of the verbs: `berth help` shows it, `berth help VERB` and
/// `berth VERB --help` each verb's own help.
struct BerthVerbs: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "berth",
        abstract: "Commands for the berth running here: its services, its health, its provisioning.",
        discussion: """
        Without one of these names first, berth is the init: berth [OPTIONS] [--] \
        COMMAND [ARGS...] (see berth --help). A program named like one of them \
        runs as berth -- NAME.
        """,
        subcommands: [
            StatusCommand.self, HealthCommand.self, LogsCommand.self,
            RestartCommand.self, StopCommand.self, StartCommand.self, HooksCommand.self,
            ProvisionCommand.self, HashPasswordCommand.self, FetchCommand.self, InstallPackagesCommand.self, HookTaskCommand.self, SetupNoticeCommand.self,
        ]
    )

    /// The subcommands' names and `help`, spelled out rather than read from
    /// `configuration` so that the init's path touches no parser metadata
    /// (a test holds the two lists equal).
    static func isVerb(_ word: String) -> Bool {
        // argv[1] is most often "--", an option or a path: its first byte
        // settles that without comparing strings.
        guard let first = word.utf8.first, (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(first) else { return false }
        return switch word {
        case "status", "health", "logs", "restart", "stop", "start", "provision", "hash-password", "fetch", "hook-task", "hooks", "setup-notice", "help": true
        // sudo matches `berth install-packages *` against the arguments joined by spaces, so it also lets through
        // one argument "install-packages x": that must be refused as a verb, never run by the init as root.
        case "install-packages", _ where word.utf8.starts(with: "install-packages ".utf8): true
        default: false
        }
    }

    /// Parses `arguments` (the verb first) and runs the verb; its exit
    /// status, 0 for help, 2 and one line on stderr for bad usage.
    static func run(_ arguments: [String]) -> Int32 {
        do {
            var command = try parseAsRoot(arguments)
            if let verb = command as? any Verb { return verb.perform() }
            try command.run()
            return 0
        } catch {
            if exitCode(for: error) == .success {
                StandardOutput.write(fullMessage(for: error) + "\n")
                return 0
            }
            let message = self.message(for: error).split(separator: "\n").first.map(String.init) ?? "bad usage"
            StandardError.write("berth \(arguments[0]): \(message) (see berth help \(arguments[0]))\n")
            return 2
        }
    }
}

/// One verb: its arguments parsed, it runs and gives berth's exit status
/// (`BerthVerbs.run` calls it; swift-argument-parser's `run()` is for the
/// built-in help alone).
protocol Verb: ParsableCommand {
    func perform() -> Int32
}

/// `berth --help`: the init's options, as the init prints them, then the
/// verbs it would otherwise not mention, from their own declarations.
func initHelpWithVerbs(arguments: [String]) -> Int32 {
    let status = berthMain(arguments: arguments)
    guard status == 0 else { return status }
    var verbs: [(name: String, abstract: String)] = []
    for type in BerthVerbs.configuration.subcommands {
        let configuration = type.configuration
        if configuration.shouldDisplay { verbs.append((configuration.commandName ?? "", configuration.abstract)) }
    }
    let width = 4 + (verbs.map { $0.name.count }.max() ?? 0)
    var text = "COMMANDS (berth help NAME for each; berth -- NAME runs a program so named):\n"
    for verb in verbs {
        text += "  " + verb.name + String(repeating: " ", count: width - 2 - verb.name.count) + verb.abstract + "\n"
    }
    StandardOutput.write(text + "\n")
    return 0
}
