import ArgumentParser

/// `berth status [--json]`: every supervised service and its state.
struct StatusCommand: Verb {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "List the services berth supervises and their state.",
        discussion: "For each service: state, pid, uptime, restarts, ready, healthy, last exit. Asks the berth running here over BERTH_RUN_DIR/control.sock (default /run/berth)."
    )

    @Flag(help: "One JSON document instead of the table.")
    var json = false

    func perform() -> Int32 {
        ControlClient.run(json ? "status --json" : "status", verb: "status")
    }
}
