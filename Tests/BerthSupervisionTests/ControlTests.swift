import Foundation
import Glibc
import TestSupport
import XCTest

/// `berth status`, `health`, `logs`, `restart`, `stop` and `start` against a
/// berth supervising services as PID 1.
final class ControlTests: XCTestCase {
    var directory = ""

    override func setUpWithError() throws {
        directory = "/tmp/berth-control-\(getpid())-\(Int.random(in: 0..<1_000_000))"
        for sub in ["", "/services.d", "/run"] { XCTAssertEqual(mkdir(directory + sub, 0o755), 0) }
    }

    override func tearDown() {
        _ = system("rm -rf '\(directory)'")
    }

    func service(_ name: String, _ text: String) throws {
        try text.write(toFile: "\(directory)/services.d/\(name).toml", atomically: true, encoding: .utf8)
    }

    var environment: [String: String] {
        ["PATH": "/usr/bin:/bin", "BERTH_SERVICES_DIR": directory + "/services.d", "BERTH_RUN_DIR": directory + "/run"]
    }

    /// The client, as root unless `user` (uid:gid) is given.
    func control(_ arguments: [String], user: String? = nil) throws -> Subprocess {
        let prefix = user.map { ["setpriv", "--reuid=\($0.split(separator: ":")[0])", "--regid=\($0.split(separator: ":")[1])", "--clear-groups"] } ?? []
        let run = try Subprocess(prefix + [Built.berth] + arguments, environment: environment)
        run.wait(timeout: 10)
        return run
    }

    func test_status_health_logs_and_control_of_running_services() throws {
        let port = SupervisorTests.freePort()
        try service("web", """
        command = ["/usr/bin/python3", "-m", "http.server", "\(port)", "--bind", "127.0.0.1"]
        [readiness]
        tcp = \(port)
        """)
        try service("sick", """
        command = ["/bin/sh", "-c", "echo hello-from-sick; exec sleep 60"]
        [health]
        command = ["/bin/sh", "-c", "test -f \(directory)/healthy"]
        interval = 0.2
        retries = 2
        restart = false
        """)
        let berth = try Subprocess(asPID1([]), environment: environment)
        defer {
            if let pid = childOf(berth.pid) { kill(pid, SIGTERM) }
            XCTAssertEqual(berth.wait(timeout: 15), .exited(0), berth.errorText)
        }
        XCTAssertTrue(try eventually { try control(["status"]).outputText.components(separatedBy: " ready ").count == 3 }, berth.errorText)

        let table = try control(["status"])
        XCTAssertEqual(table.status, .exited(0))
        XCTAssertTrue(table.outputText.hasPrefix("SERVICE  STATE  PID"), table.outputText)
        let json = try control(["status", "--json"])
        let services = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.outputText.utf8)) as? [[String: Any]], json.outputText)
        XCTAssertEqual(services.map { $0["name"] as? String }, ["sick", "web"], "in services.d name order")
        XCTAssertEqual(services.last?["ready"] as? Bool, true)
        XCTAssertNotNil(services.last?["pid"] as? Int)

        // The health check fails twice: unhealthy, and berth health says so.
        XCTAssertTrue(try eventually { try control(["health"]).status == .exited(1) })
        XCTAssertTrue(try control(["health"]).outputText.contains("service sick is unhealthy (2 failed checks)"))
        _ = FileManager.default.createFile(atPath: directory + "/healthy", contents: nil)
        XCTAssertTrue(try eventually { try control(["health"]).status == .exited(0) }, "healthy again")
        XCTAssertEqual(try control(["health"]).outputText, "healthy\n")

        XCTAssertEqual(try control(["logs", "sick"]).outputText, "hello-from-sick\n")

        XCTAssertEqual(try control(["restart", "sick"]).status, .exited(0))
        XCTAssertTrue(try eventually { try control(["logs", "sick"]).outputText == "hello-from-sick\nhello-from-sick\n" }, "restarted")
        XCTAssertTrue(try control(["status", "--json"]).outputText.contains("\"restarts\": 1"))

        XCTAssertEqual(try control(["stop", "web"]).outputText, "stopping web\n")
        XCTAssertTrue(try eventually { try control(["health"]).outputText.contains("service web is not ready (stopped)") })
        XCTAssertEqual(try control(["stop", "web"]).status, .exited(1), "already stopped")
        XCTAssertEqual(try control(["start", "web"]).status, .exited(0))
        XCTAssertTrue(try eventually { try control(["health"]).status == .exited(0) }, "web ready again")

        let unknown = try control(["restart", "nope"])
        XCTAssertEqual(unknown.status, .exited(1))
        XCTAssertEqual(unknown.errorText, "berth restart: no service named 'nope' (services: sick, web)\n")
        // Only root and the workspace user may use the socket.
        let stranger = try control(["status"], user: "65534:65534")
        XCTAssertEqual(stranger.status, .exited(1))
        XCTAssertTrue(stranger.errorText.contains("Permission denied"), stranger.errorText)
        var info = stat()
        XCTAssertEqual(stat(directory + "/run/control.sock", &info), 0)
        XCTAssertEqual(info.st_mode & 0o777, 0o600, "no workspace user here: root only")
    }

    func test_an_unhealthy_service_is_restarted_when_its_policy_says_so() throws {
        try service("flaky", """
        command = ["/bin/sh", "-c", "echo started; exec sleep 60"]
        [health]
        command = ["/bin/false"]
        interval = 0.2
        retries = 2
        """)
        let berth = try Subprocess(asPID1([]), environment: environment)
        defer {
            if let pid = childOf(berth.pid) { kill(pid, SIGTERM) }
            XCTAssertEqual(berth.wait(timeout: 15), .exited(0), berth.errorText)
        }
        XCTAssertTrue(eventually { berth.errorText.components(separatedBy: "berth: flaky: started (pid").count > 2 || { _ = berth.readLine(timeout: 0.05); return false }() })
        // In berth's log: unhealthy, stopped, then the second start.
        let lines = berth.errorText.split(separator: "\n").map(String.init)
        let unhealthy = try XCTUnwrap(lines.firstIndex(of: "berth: flaky: unhealthy (2 failed checks); restarting it"), berth.errorText)
        let starts = lines.indices.filter { lines[$0].hasPrefix("berth: flaky: started (pid") }
        XCTAssertLessThan(starts.first ?? .max, unhealthy, berth.errorText)
        XCTAssertLessThan(unhealthy, starts.dropFirst().first ?? -1, "restarted after it was found unhealthy: \(berth.errorText)")
    }

    func test_without_a_running_berth_the_client_says_so() throws {
        let run = try control(["status"])
        XCTAssertEqual(run.status, .exited(1))
        XCTAssertTrue(run.errorText.hasPrefix("berth status: cannot reach berth at \(directory)/run/control.sock"), run.errorText)
        XCTAssertEqual(try control(["status", "--yaml"]).status, .exited(2))
    }

    // MARK: per-service rules

    func test_the_workspace_user_cannot_stop_restart_or_read_a_root_service_but_controls_its_own() throws {
        try service("rootly", "command = [\"/bin/sh\", \"-c\", \"echo root-secret-line; exec sleep 60\"]\n")
        try service("mine", """
        command = ["/bin/sh", "-c", "echo hello-mine; exec sleep 60"]
        user = "nobody"
        working_dir = "/"
        """)
        try service("shared", """
        command = ["/bin/sh", "-c", "echo hello-shared; exec sleep 60"]
        control_by_workspace_user = true
        """)
        // nobody plays the workspace user: the socket lets it in.
        let berth = try Subprocess(asPID1([]), environment: environment.merging(["BERTH_USER": "nobody"]) { $1 })
        defer {
            if let pid = childOf(berth.pid) { kill(pid, SIGTERM) }
            XCTAssertEqual(berth.wait(timeout: 15), .exited(0), berth.errorText)
        }
        let workspaceUser = "65534:65534"
        XCTAssertTrue(try eventually { try control(["status"]).outputText.components(separatedBy: " ready ").count == 4 }, berth.errorText)
        func pid(_ name: String) throws -> Int? {
            let json = try control(["status", "--json"]).outputText
            let services = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]]
            return services?.first { $0["name"] as? String == name }?["pid"] as? Int
        }
        let rootPID = try XCTUnwrap(try pid("rootly"))

        let status = try control(["status"], user: workspaceUser)
        XCTAssertEqual(status.status, .exited(0), "status stays readable: \(status.errorText)")
        XCTAssertTrue(status.outputText.contains("rootly"))
        XCTAssertEqual(try control(["health"], user: workspaceUser).status, .exited(0))

        for verb in ["stop", "restart", "logs"] {
            let refused = try control([verb, "rootly"], user: workspaceUser)
            XCTAssertEqual(refused.status, .exited(1), "\(verb) of a root service by the workspace user")
            XCTAssertEqual(refused.errorText, "berth \(verb): not allowed: rootly runs as uid 0, not as uid 65534; only root or that user may \(verb) it\n")
            XCTAssertFalse(refused.outputText.contains("root-secret-line"))
        }
        usleep(300_000)
        XCTAssertEqual(try pid("rootly"), rootPID, "the root service kept running, never restarted")
        XCTAssertEqual(try control(["logs", "rootly"]).outputText, "root-secret-line\n", "root still reads it")

        XCTAssertEqual(try control(["logs", "mine"], user: workspaceUser).outputText, "hello-mine\n")
        XCTAssertEqual(try control(["restart", "mine"], user: workspaceUser).status, .exited(0))
        XCTAssertTrue(try eventually { try control(["logs", "mine"], user: workspaceUser).outputText == "hello-mine\nhello-mine\n" }, "restarted")
        XCTAssertEqual(try control(["stop", "mine"], user: workspaceUser).outputText, "stopping mine\n")

        // A root service whose file opts in.
        XCTAssertEqual(try control(["logs", "shared"], user: workspaceUser).outputText, "hello-shared\n")
        XCTAssertEqual(try control(["stop", "shared"], user: workspaceUser).outputText, "stopping shared\n")
        XCTAssertTrue(try eventually { try pid("shared") == nil })
        XCTAssertEqual(try pid("rootly"), rootPID)
    }
}
