import BerthCore
import Foundation
import Glibc
import TestSupport
import XCTest

/// The real workspace-supervisor binary with a chosen environment; its
/// stderr log is what the tests wait on.
final class SupervisorRun {
    let process: Subprocess
    private(set) var apiPort = 0

    init(_ environment: [String: String], arguments: [String] = []) throws {
        // No last backup at SIGTERM unless a test asks for one: the tests
        // of other things end the daemon at once.
        var chosen = ["PATH": "/usr/bin:/bin", "SUPERVISOR_HTTP_ADDR": "127.0.0.1:0", "SUPERVISOR_BACKUP_SHUTDOWN_BUDGET": "0"]
        chosen.merge(environment) { $1 }
        process = try Subprocess([Built.workspaceSupervisor] + arguments, environment: chosen)
    }

    /// Waits until the log holds `text` (after `from` characters); the log.
    @discardableResult
    func waitFor(_ text: String, timeout: Double = 10, after from: Int = 0) -> Bool {
        let deadline = now() + timeout
        while now() < deadline {
            if log.dropFirst(from).contains(text) { return true }
            _ = process.readLine(timeout: 0.05)
        }
        return false
    }

    var log: String { process.errorText }

    /// Starts and returns the API's port from the log line.
    func apiReady() throws -> Int {
        guard waitFor("status API on ") else { throw TestFailure("no API: \(log)") }
        let line = log.split(separator: "\n").first { $0.contains("status API on ") } ?? ""
        guard let port = line.split(separator: "(port ").last.flatMap({ Int($0.dropLast()) }) else { throw TestFailure("port in '\(line)'") }
        apiPort = port
        return port
    }
}

/// One HTTP/1.1 request over a plain socket, read to the server's close.
func http(_ port: Int, _ method: String, _ path: String, raw: String? = nil) throws -> (status: Int, headers: String, body: String) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var timeout = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    let connected = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard connected == 0 else { throw TestFailure("connect \(port): \(errno)") }
    let request = Array((raw ?? "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n").utf8)
    _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
    var answer: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = recv(fd, &buffer, buffer.count, 0)
        guard count > 0 else { break }
        answer += buffer[0..<count]
    }
    let text = String(decoding: answer, as: UTF8.self)
    guard let split = text.range(of: "\r\n\r\n") else { throw TestFailure("no HTTP answer: \(text)") }
    let head = String(text[..<split.lowerBound])
    let status = Int(head.split(separator: " ").dropFirst().first ?? "") ?? 0
    return (status, head, String(text[split.upperBound...]))
}

func jsonObject(_ text: String) throws -> [String: Any] {
    try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], text)
}

/// The control plane on 127.0.0.1 (Tests/Fixtures/fake_control_plane.py)
/// and what it recorded.
extension FixtureServer {
    static func controlPlane() throws -> FixtureServer { try FixtureServer(script: "fake_control_plane.py") }

    func mode(_ text: String) { set("mode", text) }

    var requests: [[String: Any]] {
        (readText(state + "/requests") ?? "").split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    var maxInFlight: Int { Int(readText(state + "/max-in-flight")?.trimmingWhitespace() ?? "0") ?? 0 }

    /// The reports' snapshots, in order.
    var snapshots: [[String: Any]] {
        requests.compactMap { request in
            (request["body"] as? String).flatMap { try? jsonObject($0) }?["snapshot"] as? [String: Any]
        }
    }
}

/// A scratch directory for a workspace and its backups.
final class Scratch {
    let path: String

    init() {
        path = "/tmp/berth-wsv-\(getpid())-\(Int.random(in: 0..<1_000_000))"
        mkdir(path, 0o700)
    }

    deinit { _ = system("rm -rf '\(path)'") }

    func sh(_ script: String) throws -> String {
        let run = try Subprocess(["/bin/sh", "-c", script], environment: ["PATH": "/usr/bin:/bin"], workingDirectory: path)
        guard run.wait(timeout: 120) == .exited(0) else { throw TestFailure("sh: \(script): \(run.errorText)") }
        return run.outputText
    }
}
