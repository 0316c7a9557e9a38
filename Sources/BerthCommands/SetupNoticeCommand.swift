import ArgumentParser
import BerthCore
import Glibc

/// `berth setup-notice`: hidden. The base image's /etc/profile.d runs it at
/// each login: one line while a set-up task (a devcontainer.json hook, the
/// dotfiles) still runs, saying how to follow it, and one per task that
/// failed; nothing otherwise, and nothing when no berth answers. It never
/// fails a login.
struct SetupNoticeCommand: Verb {
    static let configuration = CommandConfiguration(
        commandName: "setup-notice",
        abstract: "One line at login while the workspace is still being set up, or when a set-up task failed.",
        shouldDisplay: false
    )

    func perform() -> Int32 {
        let runDirectory = Settings(environment: currentEnvironment()).value("BERTH_RUN_DIR", default: "/run/berth")
        guard case .success(let answer) = ControlClient.request("health", socket: runDirectory + "/control.sock") else { return 0 }
        let notes = answer.text.split(separator: "\n").filter { $0.hasPrefix("note: ") }.map { String($0.dropFirst(6)) }
        let running = notes.first { $0.hasPrefix("setting up: ") && $0.contains(" running ") }
        let failed = notes.filter { $0.hasPrefix("set-up: ") }
        StandardOutput.write(([running].compactMap { $0 } + failed).map { "berth: \($0)\n" }.joined())
        return 0
    }
}
