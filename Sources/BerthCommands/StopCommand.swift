import ArgumentParser

/// `berth stop NAME`: one request to the berth running here.
struct StopCommand: Verb {
    static let configuration = CommandConfiguration(
        commandName: "stop",
        abstract: "Stop a service; it stays stopped until berth start.",
        discussion: "Root and the user the service runs as may do this; the workspace user too when the service's file says control_by_workspace_user = true."
    )

    @Argument(help: ArgumentHelp("The service, as berth status lists it.", valueName: "NAME"))
    var service: ServiceName

    func perform() -> Int32 {
        ControlClient.run("stop \(service.name)", verb: "stop")
    }
}
