import BerthCore
import CBerth
import Glibc

/// A Python stand-in server from Tests/Fixtures on 127.0.0.1 (Debian's
/// python3, standard library only): started with a state folder (and
/// `arguments`), it prints its port and serves until its stdin closes, when
/// this object goes. Tests steer it and read what it saw through files in
/// `state`.
public final class FixtureServer {
    public let state: String
    public let port: Int
    private let server: Subprocess
    private let input: [Int32]

    /// `launcher`: a prefix for the server's command, e.g. nsenter into a
    /// container's network namespace so the server is on its loopback.
    public init(script name: String, arguments: [String] = [], launcher: [String] = []) throws {
        state = "/tmp/berth-fixture-\(getpid())-\(Int.random(in: 0..<1_000_000))"
        guard mkdir(state, 0o700) == 0 else { throw TestFailure("mkdir \(state)") }
        var pipe: [Int32] = [-1, -1]
        guard berth_pipe_cloexec(&pipe) == 0 else { throw TestFailure("pipe") }
        input = pipe
        let script = String(#filePath.dropLast("Support/FixtureServer.swift".count)) + "Fixtures/" + name
        server = try Subprocess(launcher + ["/usr/bin/python3", script, state] + arguments, environment: ["PATH": "/usr/bin:/bin"], input: pipe[0])
        close(pipe[0])
        guard let line = server.readLine(timeout: 15), let number = Int(line.trimmingWhitespace()) else {
            close(pipe[1])
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

    public var url: String { "http://127.0.0.1:\(port)" }

    /// Replaces the state file `name` whole (the server reads it per request).
    public func set(_ name: String, _ text: String) {
        let path = state + "/" + name
        let temporary = path + ".new"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        var bytes = Array(text.utf8)
        _ = write(fd, &bytes, bytes.count)
        close(fd)
        rename(temporary, path)
    }
}
