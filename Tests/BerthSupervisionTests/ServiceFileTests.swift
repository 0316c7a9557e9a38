@testable import BerthSupervision
import Glibc
import XCTest

final class ServiceFileTests: XCTestCase {
    func test_a_full_file_reads_into_a_definition() throws {
        let text = """
        # a web app
        command = ["/usr/bin/app", "--port", "8000"]
        user = "nobody"
        working_dir = '/srv'
        depends_on = ["sshd"]
        restart = "on-failure"
        stop_signal = "INT"
        stop_grace = 2.5
        critical = true
        pass_secrets = ["GITHUB_TOKEN"]
        environment = { MODE = "prod", EMPTY = "" }

        [readiness]
        tcp = 8000
        timeout = "1m30s"

        [health]
        command = [
          "curl", "-fs",   # multi-line arrays and comments
          "http://127.0.0.1:8000/",
        ]
        interval = 10
        retries = 2
        """
        let service = try ServiceFile.parse(text, name: "web", path: "services.d/web.toml")
        XCTAssertEqual(service.command, ["/usr/bin/app", "--port", "8000"])
        XCTAssertEqual(service.user, "nobody")
        XCTAssertEqual(service.workingDirectory, "/srv")
        XCTAssertEqual(service.dependsOn, ["sshd"])
        XCTAssertEqual(service.restart, .onFailure)
        XCTAssertEqual(service.stopSignal, SIGINT)
        XCTAssertEqual(service.stopGrace, .milliseconds(2500))
        XCTAssertTrue(service.critical)
        XCTAssertEqual(service.passSecrets, ["GITHUB_TOKEN"])
        XCTAssertEqual(service.environment, ["MODE": "prod", "EMPTY": ""])
        XCTAssertEqual(service.readiness, .tcp(port: 8000))
        XCTAssertEqual(service.readinessTimeout, .seconds(90))
        XCTAssertEqual(service.health?.command, ["curl", "-fs", "http://127.0.0.1:8000/"])
        XCTAssertEqual(service.health?.interval, .seconds(10))
        XCTAssertEqual(service.health?.retries, 2)
        XCTAssertFalse(service.controlByWorkspaceUser, "root services are not the workspace user's unless the file says so")
    }

    func test_a_group_with_its_user_and_the_control_opt_in_are_read() throws {
        let text = "command = [\"/bin/x\"]\nuser = \"nobody\"\ngroup = \"nogroup\"\ncontrol_by_workspace_user = true\n"
        let service = try ServiceFile.parse(text, name: "x", path: "services.d/x.toml")
        XCTAssertEqual(service.group, "nogroup")
        XCTAssertTrue(service.controlByWorkspaceUser)
    }

    func test_errors_name_the_file_the_line_and_the_field() {
        let cases: [(String, String)] = [
            ("command = [\"/bin/x\"]\nrestart = \"sometimes\"\n", "services.d/x.toml: line 2: restart: expected always, on-failure or never, not 'sometimes'"),
            ("command = \"/bin/x\"\n", "services.d/x.toml: line 1: command: expected an array of strings, not a string"),
            ("user = \"me\"\n", "services.d/x.toml: command: required, an array of strings like [\"/usr/bin/app\", \"--flag\"]"),
            ("command = [\"/bin/x\"]\n\n\nstop_grace = \"5 parsecs\"\n", "services.d/x.toml: line 4: stop_grace: expected a duration from 0 s to 1 d, like 5, 0.5 or \"5m\""),
            ("command = [\"/bin/x\"]\nstop_grace = [5]\n", "services.d/x.toml: line 2: stop_grace: expected a duration, like 5, 0.5 or \"5m\", not an array"),
            ("command = [\"/bin/x\"]\ncomand = 1\n", "services.d/x.toml: line 2: comand: unknown field"),
            ("command = [\"/bin/x\"\n", "services.d/x.toml: line 2: expected ',' or ']' in the array"),
            ("command = [\"/bin/x\"]\n[readiness]\ntcp = 80\nnotify = true\n", "services.d/x.toml: line 4: readiness.notify: give one of readiness.tcp, readiness.command, readiness.notify"),
            ("command = [\"/bin/x\"]\nstop_signal = \"TERMINATE\"\n", "services.d/x.toml: line 2: stop_signal: 'TERMINATE' is not a signal name"),
            ("command = [\"/bin/x\"]\ncritical = yes\n", "services.d/x.toml: line 2: expected a value (strings need quotes)"),
            ("command = [\"/bin/x\"]\ncommand = [\"/bin/y\"]\n", "services.d/x.toml: line 2: command is set twice"),
            // A group without a user would be ignored: the service would run as root.
            ("command = [\"/bin/x\"]\n\ngroup = \"nogroup\"\n", "services.d/x.toml: line 3: group: needs user"),
            ("command = [\"/bin/x\"]\nuser = \"nobody\"\ngroup = \"no-such-group-anywhere\"\n",
             "services.d/x.toml: line 3: group: 'no-such-group-anywhere': no such group in /etc/group"),
            ("command = [\"/bin/x\"]\ncontrol_by_workspace_user = \"yes\"\n", "services.d/x.toml: line 2: control_by_workspace_user: expected true or false"),
        ]
        for (text, expected) in cases {
            XCTAssertThrowsError(try ServiceFile.parse(text, name: "x", path: "services.d/x.toml")) { error in
                XCTAssertTrue("\(error)".hasPrefix(expected), "\(error)\n  expected: \(expected)")
            }
        }
    }

    func test_unknown_dependencies_and_cycles_are_refused() {
        var a = ServiceDefinition(name: "a", command: ["/bin/a"])
        var b = ServiceDefinition(name: "b", command: ["/bin/b"])
        a.dependsOn = ["b"]
        b.dependsOn = ["a"]
        XCTAssertThrowsError(try Supervisor.order([a, b])) { XCTAssertEqual("\($0)", "services depend on each other in a cycle: a, b") }
        b.dependsOn = ["c"]
        XCTAssertThrowsError(try Supervisor.order([a, b])) { XCTAssertEqual("\($0)", "service b: depends_on 'c', which is not a service") }
        b.dependsOn = []
        XCTAssertEqual(try Supervisor.order([a, b]).map(\.name), ["b", "a"])
    }
}
