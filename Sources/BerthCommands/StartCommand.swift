import ArgumentParser

/// `berth start NAME`: one request to the berth running here.
struct StartCommand: Verb {
    static let configuration = CommandConfiguration(
        commandName: "start",
        abstract: "Start a stopped service.",
        discussion: "Root and the user the service runs as may do this; the workspace user too when the service's file says control_by_workspace_user = true."
    )

    @Argument(help: ArgumentHelp("The service, as berth status lists it.", valueName: "NAME"))
    var service: ServiceName

    func perform() -> Int32 {
        ControlClient.run("start \(service.name)", verb: "start")
    }
}
