import ArgumentParser

/// `berth logs NAME`: one request to the berth running here.
struct LogsCommand: Verb {
    static let configuration = CommandConfiguration(
        commandName: "logs",
        abstract: "Print a service's recent output lines.",
        discussion: "Root and the user the service runs as may do this; the workspace user too when the service's file says control_by_workspace_user = true."
    )

    @Argument(help: ArgumentHelp("The service, as berth status lists it.", valueName: "NAME"))
    var service: ServiceName

    func perform() -> Int32 {
        ControlClient.run("logs \(service.name)", verb: "logs")
    }
}
