@testable import BerthPlugins
import BerthCore
import Glibc
import TestSupport
import XCTest

/// DOTFILES_REPO=OWNER/NAME cloned over HTTPS from a git server on
/// loopback that demands the token, reached only through the credential
/// helper github-auth provisions (its own code writes the home's
/// .gitconfig): never a token in the URL, argv or the clone's config.
extension DotfilesInstallerTests {
    static let token = "ghp_dotfilesOverHTTPS0123456789abcdef"

    /// A self-signed certificate for 127.0.0.1 and a server holding `owner/dots.git`.
    func servedRepository() throws -> (server: FixtureServer, certificate: String) {
        let certificate = scratch + "/cert.pem"
        let key = scratch + "/key.pem"
        let openssl = try Subprocess(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                                      "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", certificate], environment: gitEnvironment)
        guard openssl.wait(timeout: 60) == .exited(0) else { throw TestFailure("openssl: \(openssl.errorText)") }
        let source = try makeRepository("dots-source", ["greeting": "over https\n", "install.sh": Self.markingScript], executable: ["install.sh"])
        XCTAssertEqual(mkdir(scratch + "/served", 0o755), 0)
        XCTAssertEqual(mkdir(scratch + "/served/owner", 0o755), 0)
        try git(["clone", "--quiet", "--bare", source, scratch + "/served/owner/dots.git"], in: scratch)
        let server = try FixtureServer(script: "git_https_server.py", arguments: [certificate, key, scratch + "/served"])
        server.set("token", Self.token)
        return (server, certificate)
    }

    /// What github-auth writes for `host`: with gh's helper when `gh` is given, else git's store.
    func provisionCredentials(host: String, gh: String?) throws {
        let user = UserAccount(name: "root", uid: getuid(), gid: getgid(), home: home, shell: "/bin/sh", groups: [getgid()])
        let credentials = GitHubCredentials(user: user, host: host, gh: gh, gitName: nil, gitEmail: nil)
        let token = GitHubToken(secret: Secret(Array(Self.token.utf8)), source: "GH_TOKEN")
        _ = try credentials.install(token, for: GitHubIdentity(login: "octocat", id: 1, name: "The Octocat", email: nil))
    }

    func requests(_ server: FixtureServer) -> [String] {
        (readText(server.state + "/requests") ?? "").split(separator: "\n").map(String.init)
    }

    func cloneOverHTTPS(gh: String?) throws {
        let (server, certificate) = try servedRepository()
        let host = "127.0.0.1:\(server.port)"
        try provisionCredentials(host: host, gh: gh)
        let run = try install("owner/dots", environment: ["GIT_SSL_CAINFO=" + certificate], variables: ["GH_HOST": host])
        XCTAssertEqual(run.status, 0, run.output)
        XCTAssertEqual(readText(marker), "over https\n", run.output)
        let served = requests(server)
        // git asks without credentials first; the answer carried the token.
        XCTAssertEqual(served.first, "GET /owner/dots.git/info/refs missing", served.joined(separator: "\n"))
        XCTAssertTrue(served.contains { $0.hasSuffix(" ok") && $0.hasPrefix("POST /owner/dots.git/git-upload-pack") }, served.joined(separator: "\n"))
        XCTAssertFalse(served.contains { $0.hasSuffix(" wrong") }, served.joined(separator: "\n"))
        let remote = try git(["config", "--get", "remote.origin.url"], in: target)
        XCTAssertEqual(remote, "https://\(host)/owner/dots.git", "no credentials in the clone's config")
        XCTAssertFalse(run.output.contains(Self.token), run.output)
        XCTAssertFalse((readText(target + "/.git/config") ?? "").contains(Self.token))
    }

    func test_OWNER_NAME_is_cloned_over_https_with_the_token_from_gits_store_helper() throws {
        try cloneOverHTTPS(gh: nil)
    }

    func test_OWNER_NAME_is_cloned_over_https_with_the_token_from_ghs_credential_helper() throws {
        let gh = try XCTUnwrap((["/usr/bin/gh", "/usr/local/bin/gh"] as [String]).first { (path: String) in access(path, X_OK) == 0 }, "gh is a test dependency (scripts/install-dependencies)")
        try cloneOverHTTPS(gh: gh)
    }

    func test_without_provisioned_credentials_the_clone_fails_at_once_and_nothing_prompts() throws {
        let (server, certificate) = try servedRepository()
        let host = "127.0.0.1:\(server.port)"
        let run = try install("owner/dots", environment: ["GIT_SSL_CAINFO=" + certificate], variables: ["GH_HOST": host])
        XCTAssertNotEqual(run.status, 0, run.output)
        XCTAssertTrue(run.output.contains("owner/dots"), run.output)
        XCTAssertNil(readText(marker))
        XCTAssertEqual(requests(server), ["GET /owner/dots.git/info/refs missing"], "one unanswered challenge; no prompt, no retry")
    }

    func test_a_wrong_token_is_refused_by_the_server_and_never_shown() throws {
        let (server, certificate) = try servedRepository()
        let host = "127.0.0.1:\(server.port)"
        try provisionCredentials(host: host, gh: nil)
        server.set("token", "ghp_theServerWantsAnotherOne")
        let run = try install("owner/dots", environment: ["GIT_SSL_CAINFO=" + certificate], variables: ["GH_HOST": host])
        XCTAssertNotEqual(run.status, 0, run.output)
        XCTAssertTrue(requests(server).contains { $0.hasSuffix(" wrong") }, requests(server).joined(separator: "\n"))
        XCTAssertFalse(run.output.contains(Self.token), run.output)
    }
}
