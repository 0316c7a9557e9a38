import ArgumentParser

/// `berth hooks run NAME`: a devcontainer.json hook again, now, whatever
/// the workspace remembers of it.
struct HooksCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hooks",
        abstract: "devcontainer.json's life-cycle hooks, as berth's set-up tasks.",
        subcommands: [Run.self, Attached.self]
    )

    /// `berth hooks attached`: hidden; /etc/ssh/sshrc runs it at each SSH
    /// session. Asks for postAttach and returns at once: the session never
    /// waits for the hook, and says nothing (scp and rsync read its output).
    struct Attached: Verb {
        static let configuration = CommandConfiguration(
            commandName: "attached",
            abstract: "Ask berth to run postAttach for a new session, without waiting.",
            shouldDisplay: false
        )

        func perform() -> Int32 {
            _ = ControlClient.request("run postAttach", socket: ControlClient.socketPath())
            return 0
        }
    }

    struct Run: Verb {
        static let configuration = CommandConfiguration(
            commandName: "run",
            abstract: "Run a hook again now (onCreate, updateContent, postCreate, postStart), even one that ran for this workspace.",
            discussion: "Root and the workspace user may do this. Follow it with berth logs NAME; berth status shows how it ended."
        )

        @Argument(help: ArgumentHelp("The hook, as berth status lists it.", valueName: "NAME"))
        var task: ServiceName

        func perform() -> Int32 {
            ControlClient.run("run \(task.name)", verb: "hooks run")
        }
    }
}
