import BerthCore
import CBerth
import Glibc

/// Tests/Fixtures/fake_github.py on 127.0.0.1: GitHub's `GET /user` and a
/// token endpoint, with slow, hanging, 401, 500 and malformed answers.
/// Its behaviour is a set of files in `state`, changed by the test.
public final class FakeGitHub {
    public let state: String
    public private(set) var port = 0
    private let server: Subprocess
    private let input: [Int32]

    /// `launcher`: a prefix for the server's command, e.g. nsenter into a
    /// container's network namespace so the server is on its loopback.
    public init(launcher: [String] = []) throws {
        state = "/tmp/berth-github-\(getpid())-\(Int.random(in: 0..<1_000_000))"
        guard mkdir(state, 0o700) == 0 else { throw TestFailure("mkdir \(state)") }
        var pipe: [Int32] = [-1, -1]
        guard berth_pipe_cloexec(&pipe) == 0 else { throw TestFailure("pipe") }
        input = pipe
        let script = String(#filePath.dropLast("Support/FakeGitHub.swift".count)) + "Fixtures/fake_github.py"
        // Debian's python3 (.ci/run installs it): only the standard library.
        server = try Subprocess(launcher + ["/usr/bin/python3", script, state], environment: ["PATH": "/usr/bin:/bin"], input: pipe[0])
        close(pipe[0])
        guard let line = server.readLine(timeout: 15), let number = Int(line.trimmingWhitespace()) else {
            throw TestFailure("fake GitHub did not start: \(server.errorText)")
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

    public func set(_ name: String, _ text: String) {
        let path = state + "/" + name
        let temporary = path + ".new"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        var bytes = Array(text.utf8)
        _ = write(fd, &bytes, bytes.count)
        close(fd)
        rename(temporary, path)
    }

    /// GitHub users by token.
    public func users(_ users: [String: (login: String, id: Int, name: String?, email: String?)]) {
        func quoted(_ text: String?) -> String { text.map { "\"\($0)\"" } ?? "null" }
        let entries = users.map { "\"\($0.key)\": {\"login\": \"\($0.value.login)\", \"id\": \($0.value.id), \"name\": \(quoted($0.value.name)), \"email\": \(quoted($0.value.email))}" }
        set("users.json", "{" + entries.joined(separator: ", ") + "}")
    }

    /// "GET /user Bearer" lines, one per request so far.
    public var requests: [String] {
        (readText(state + "/requests") ?? "").split(separator: "\n").map(String.init)
    }
}
