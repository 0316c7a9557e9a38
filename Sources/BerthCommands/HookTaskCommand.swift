import ArgumentParser
import BerthCore
import BerthPlugins

/// `berth hook-task NAME`: hidden. berth runs itself so, as the workspace
/// user in a session of its own, for each devcontainer.json hook (a set-up
/// task): see HookRunner.
struct HookTaskCommand: Verb {
    static let configuration = CommandConfiguration(
        commandName: "hook-task",
        abstract: "Run one devcontainer.json hook as berth's set-up task.",
        shouldDisplay: false
    )

    @Argument(help: ArgumentHelp("onCreate, updateContent, postCreate or postStart.", valueName: "NAME"))
    var name: String

    func perform() -> Int32 {
        HookRunner.run(task: name, environment: Environment.inherited())
    }
}
