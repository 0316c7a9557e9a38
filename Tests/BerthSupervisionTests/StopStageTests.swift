@testable import BerthSupervision
import XCTest

/// The stages services stop in: each service's own, raised to the latest
/// of its dependents' so that no stage waits on the next one.
final class StopStageTests: XCTestCase {
    func service(_ name: String, _ stage: ServiceDefinition.StopStage, dependsOn: [String] = []) -> ServiceDefinition {
        var definition = ServiceDefinition(name: name, command: ["/bin/true"])
        definition.stopStage = stage
        definition.dependsOn = dependsOn
        return definition
    }

    func test_each_service_keeps_its_own_stage_when_no_later_one_depends_on_it() {
        let stages = Supervisor.stopStages([service("editor", .first, dependsOn: ["sshd"]), service("workspace-supervisor", .afterServices),
                                            service("sshd", .last)])
        XCTAssertEqual(stages, ["editor": .first, "workspace-supervisor": .afterServices, "sshd": .last])
    }

    func test_what_a_later_stage_depends_on_stops_with_that_stage_through_a_chain() {
        let stages = Supervisor.stopStages([service("database", .first), service("cache", .first, dependsOn: ["database"]),
                                            service("backup", .afterServices, dependsOn: ["cache"]), service("sshd", .last)])
        XCTAssertEqual(stages["cache"], .afterServices)
        XCTAssertEqual(stages["database"], .afterServices, "raised through cache, not only one step")
        XCTAssertEqual(stages["sshd"], .last)
    }
}
