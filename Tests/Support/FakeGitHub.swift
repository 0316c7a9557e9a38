import BerthCore
import Glibc

/// Tests/Fixtures/fake_github.py on 127.0.0.1: GitHub's `GET /user` and a
/// token endpoint, with slow, hanging, 401, 500 and malformed answers.
/// Its behaviour is a set of files in `state`, changed by the test.
public final class FakeGitHub {
    private let server: FixtureServer

    /// `launcher`: a prefix for the server's command, e.g. nsenter into a
    /// container's network namespace so the server is on its loopback.
    public init(launcher: [String] = []) throws {
        server = try FixtureServer(script: "fake_github.py", launcher: launcher)
    }

    public var state: String { server.state }
    public var port: Int { server.port }
    public var url: String { server.url }
    public func set(_ name: String, _ text: String) { server.set(name, text) }

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
