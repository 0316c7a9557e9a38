import Foundation
import Glibc
import TestSupport
import XCTest

/// Activity seen on a real loopback port, reported to a fake control plane.
final class ActivityReportTests: XCTestCase {
    /// A listening socket on 127.0.0.1 standing in for code-server's port.
    final class Listener {
        let fd: Int32
        let port: Int
        var accepted: [Int32] = []
        var clients: [Int32] = []

        init() throws {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            self.fd = fd
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafeMutablePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && listen(fd, 8) == 0 && getsockname(fd, $0, &length) == 0 }
            }
            guard bound else { throw TestFailure("listen") }
            port = Int(UInt16(bigEndian: address.sin_port))
        }

        /// One established connection (both ends held open).
        func connectOne() throws {
            let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(client, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            guard connected == 0 else { throw TestFailure("connect") }
            clients.append(client)
            accepted.append(accept(fd, nil, nil))
        }

        func closeAll() {
            (clients + accepted).forEach { close($0) }
            clients = []
            accepted = []
        }

        deinit {
            closeAll()
            close(fd)
        }
    }

    func test_connections_are_reported_on_change_and_by_heartbeat_with_the_bearer_key() throws {
        let plane = try FixtureServer.controlPlane()
        let ide = try Listener()
        let scratch = Scratch()
        let key = "agent-key-\(Int.random(in: 100_000..<999_999))"
        _ = try scratch.sh("printf '%s\\n' '\(key)' > key && chmod 600 key")
        let run = try SupervisorRun([
            "SUPERVISOR_AGENT_ENABLED": "true", "SUPERVISOR_AGENT_BASE_URL": plane.url + "/", "ENVIRONMENT_ID": "env-42",
            "SUPERVISOR_AGENT_API_KEY_FILE": scratch.path + "/key", "SUPERVISOR_MONITOR_INTERVAL": "100ms",
            "SUPERVISOR_AGENT_HEARTBEAT_INTERVAL": "1s", "SUPERVISOR_IDE_PORT": String(ide.port), "SUPERVISOR_SSH_PORT": String(ide.port + 1),
        ])
        let port = try run.apiReady()
        XCTAssertTrue(eventually { plane.requests.count >= 1 }, run.log)
        let first = try XCTUnwrap(plane.requests.first)
        XCTAssertEqual(first["path"] as? String, "/api/v1/environments/env-42/activity")
        XCTAssertEqual(first["auth"] as? String, "Bearer " + key)
        XCTAssertEqual(first["type"] as? String, "application/json")
        let body = try jsonObject(try XCTUnwrap(first["body"] as? String))
        XCTAssertEqual(body["environmentId"] as? String, "env-42")
        XCTAssertNotNil(body["timestamp"] as? String)
        let snapshot = try XCTUnwrap(body["snapshot"] as? [String: Any])
        XCTAssertEqual(snapshot["activeIDEConnections"] as? Int, 0)
        XCTAssertTrue(snapshot["lastIDEActivity"] is NSNull)

        // A connection: reported at once (well before the 1 s heartbeat).
        let before = plane.requests.count
        try ide.connectOne()
        let opened = now()
        XCTAssertTrue(eventually(5) { plane.snapshots.contains { $0["activeIDEConnections"] as? Int == 1 } }, run.log)
        XCTAssertLessThan(now() - opened, 0.9)
        XCTAssertGreaterThan(plane.requests.count, before)
        let active = try XCTUnwrap(plane.snapshots.last { $0["activeIDEConnections"] as? Int == 1 })
        XCTAssertNotNil(active["lastIDEActivity"] as? String)
        XCTAssertEqual(try jsonObject(try http(port, "GET", "/status").body)["activity"].flatMap { ($0 as? [String: Any])?["activeIDEConnections"] as? Int }, 1)

        ide.closeAll()
        XCTAssertTrue(eventually(5) { (plane.snapshots.last?["activeIDEConnections"] as? Int) == 0 }, run.log)
        XCTAssertNotNil(plane.snapshots.last?["lastIDEActivity"] as? String, "the last activity stays")

        // Idle: heartbeats still come, about one a second.
        let idle = plane.requests.count
        usleep(2_600_000)
        XCTAssertGreaterThanOrEqual(plane.requests.count - idle, 2, "heartbeats while idle")
        XCTAssertLessThanOrEqual(plane.requests.count - idle, 4)

        XCTAssertFalse(run.log.contains(key), "the key never reaches the log")
        run.process.signal(SIGTERM)
        XCTAssertEqual(run.process.wait(timeout: 5), .exited(0), run.log)
    }

    func test_failures_are_retried_with_backoff_and_a_hanging_plane_never_gets_a_second_request() throws {
        let plane = try FixtureServer.controlPlane()
        plane.mode("500")
        let run = try SupervisorRun([
            "SUPERVISOR_AGENT_ENABLED": "1", "SUPERVISOR_AGENT_BASE_URL": plane.url, "ENVIRONMENT_ID": "env-1",
            "SUPERVISOR_MONITOR_INTERVAL": "100ms", "SUPERVISOR_AGENT_HEARTBEAT_INTERVAL": "200ms", "SUPERVISOR_AGENT_TIMEOUT": "30s",
            "SUPERVISOR_IDE_PORT": "1", "SUPERVISOR_SSH_PORT": "2",
        ])
        let port = try run.apiReady()
        // 500s: retried after 1 s, then 2 s; heartbeats meanwhile wait.
        XCTAssertTrue(eventually(6) { plane.requests.count >= 3 }, run.log)
        let times = plane.requests.prefix(3).compactMap { $0["at"] as? Double }
        XCTAssertEqual(times.count, 3)
        XCTAssertEqual(times[1] - times[0], 1, accuracy: 0.35)
        XCTAssertEqual(times[2] - times[1], 2, accuracy: 0.5)
        let agent = try XCTUnwrap(try jsonObject(try http(port, "GET", "/status").body)["agent"] as? [String: Any])
        XCTAssertEqual(agent["lastError"] as? String, "the control plane answered 500")
        XCTAssertGreaterThanOrEqual(agent["failed"] as? Int ?? 0, 2)

        plane.mode("")
        XCTAssertTrue(eventually(8) { (try? jsonObject(try http(port, "GET", "/status").body)["agent"] as? [String: Any])?["sent"] as? Int ?? 0 >= 1 })

        // Hanging: one request stays open; heartbeats every 200 ms must not
        // open another beside it.
        plane.mode("hang")
        let count = plane.requests.count
        usleep(3_000_000)
        XCTAssertEqual(plane.requests.count, count + 1, "exactly one request to the hanging plane")
        XCTAssertEqual(plane.maxInFlight, 1)
        // And the request in flight does not hold up shutdown.
        let stopping = now()
        run.process.signal(SIGTERM)
        XCTAssertEqual(run.process.wait(timeout: 5), .exited(0), run.log)
        XCTAssertLessThan(now() - stopping, 1)
    }
}
