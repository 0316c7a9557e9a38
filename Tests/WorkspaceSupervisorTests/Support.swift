import BerthCore
import CBerth
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
        var chosen = ["PATH": "/usr/bin:/bin", "SUPERVISOR_HTTP_ADDR": "127.0.0.1:0"]
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

/// A Python fixture server on 127.0.0.1 (Tests/Fixtures): the control
/// plane by default, or `script` with its arguments after the state folder.
final class FixtureServer {
    let state: String
    private(set) var port = 0
    private let server: Subprocess
    private let input: [Int32]

    init(script name: String = "fake_control_plane.py", arguments: [String] = []) throws {
        state = "/tmp/berth-fixture-\(getpid())-\(Int.random(in: 0..<1_000_000))"
        guard mkdir(state, 0o700) == 0 else { throw TestFailure("mkdir \(state)") }
        var pipe: [Int32] = [-1, -1]
        guard berth_pipe_cloexec(&pipe) == 0 else { throw TestFailure("pipe") }
        input = pipe
        let script = String(#filePath.dropLast("WorkspaceSupervisorTests/Support.swift".count)) + "Fixtures/" + name
        server = try Subprocess(["/usr/bin/python3", script, state] + arguments, environment: ["PATH": "/usr/bin:/bin"], input: pipe[0])
        close(pipe[0])
        guard let line = server.readLine(timeout: 15), let number = Int(line.trimmingWhitespace()) else {
            throw TestFailure("\(name) did not start: \(server.errorText)")
        }
        port = number
    }

    deinit {
        close(input[1])
        server.signal(SIGKILL)
        _ = server.wait(timeout: 5)
        _ = system("rm -rf '\(state)'")
    }

    var url: String { "http://127.0.0.1:\(port)" }

    func mode(_ text: String) {
        FileManager.default.createFile(atPath: state + "/mode.new", contents: Data(text.utf8))
        rename(state + "/mode.new", state + "/mode")
    }

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
