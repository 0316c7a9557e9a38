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
            _ = berth.wait(timeout: 15)
        }
        XCTAssertTrue(eventually { berth.errorText.components(separatedBy: "berth: flaky: started (pid").count > 2 || { _ = berth.readLine(timeout: 0.05); return false }() })
        XCTAssertTrue(berth.errorText.contains("berth: flaky: unhealthy (2 failed checks); restarting it"), berth.errorText)
    }

    func test_without_a_running_berth_the_client_says_so() throws {
        let run = try control(["status"])
        XCTAssertEqual(run.status, .exited(1))
        XCTAssertTrue(run.errorText.hasPrefix("berth status: cannot reach berth at \(directory)/run/control.sock"), run.errorText)
        XCTAssertEqual(try control(["status", "--yaml"]).status, .exited(2))
    }
}
