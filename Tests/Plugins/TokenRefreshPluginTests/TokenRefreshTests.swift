import Foundation
import Glibc
import TestSupport
@testable import BerthPlugins
import XCTest

/// token-refresh end to end: berth as PID 1 in a throwaway root with gh and
/// git, a token file rotated in place, and a token endpoint on 127.0.0.1.
final class TokenRefreshTests: XCTestCase {
    static let tools = ["/usr/bin/gh", "/usr/bin/git", "/usr/bin/env", "/usr/lib/x86_64-linux-gnu/libcurl.so.4"]
    var github: FakeGitHub!

    override func setUpWithError() throws {
        github = try FakeGitHub()
        github.users(["ghp_first": ("octocat", 1, nil, nil), "ghp_second": ("octocat", 1, nil, nil)])
    }

    override func tearDown() {
        github = nil
    }

    func start(_ root: ThrowawayRoot, _ extra: [String: String]) throws -> Subprocess {
        let environment = ["PATH": "/usr/bin:/bin", "GITHUB_API_URL": github.url, "GH_HOST": "github.com",
                           "BERTH_TOKEN_REFRESH_INTERVAL": "1"].merging(extra) { $1 }
        let run = try root.berth(["--", "/testkit", "print-signals", "\(SIGTERM)", "60"], environment: environment)
        XCTAssertEqual(run.readLine(timeout: 20)?.hasPrefix("ready"), true, "the command started: \(run.errorText)")
        return run
    }

    func stop(_ run: Subprocess) {
        if let berth = childOf(run.pid) { kill(berth, SIGTERM) }
        XCTAssertEqual(run.wait(timeout: 10), .exited(0))
    }

    func ghToken(_ root: ThrowawayRoot) throws -> String {
        try root.asUser(["gh", "auth", "token"]).outputText
    }

    func health(_ root: ThrowawayRoot) throws -> Subprocess {
        let run = try root.berth(["health"], environment: ["PATH": "/usr/bin:/bin"])
        run.wait()
        return run
    }

    func test_a_token_file_rotated_in_place_reaches_gh_within_an_interval() throws {
        let root = try ThrowawayRoot(tools: Self.tools)
        try root.write("/secrets/token", "ghp_first\n", mode: 0o400)
        let run = try start(root, ["GITHUB_TOKEN_FILE": "/secrets/token"])
        XCTAssertEqual(try ghToken(root), "ghp_first\n")
        // Kubernetes swaps a symlink; Docker rewrites: a rename is both.
        try root.write("/secrets/token.new", "ghp_second\n", mode: 0o400)
        rename(root.path + "/secrets/token.new", root.path + "/secrets/token")
        XCTAssertTrue(try eventually { try ghToken(root) == "ghp_second\n" }, "the new token reached gh")
        XCTAssertEqual(try health(root).status, .exited(0))
        stop(run)
        XCTAssertTrue(run.errorText.contains("berth: token-refresh: installed a new token from GITHUB_TOKEN_FILE"), run.errorText)
        XCTAssertFalse(run.errorText.contains("ghp_"), "no token in the log")
        let validations = github.requests.filter { $0 == "GET /user Bearer" }.count
        XCTAssertEqual(validations, 2, "an unchanged token is not validated again at every tick: \(github.requests)")
    }

    func test_an_endpoint_token_is_fetched_and_failures_keep_the_last_good_one() throws {
        let root = try ThrowawayRoot(tools: Self.tools)
        try root.write("/secrets/endpoint-auth", "s3cret-endpoint-credential\n", mode: 0o400)
        github.set("endpoint-auth", "s3cret-endpoint-credential")
        github.set("endpoint", "{\"token\": \"ghp_first\", \"expires_at\": \"2030-01-01T00:00:00Z\"}")
        let run = try start(root, ["GITHUB_TOKEN_URL": github.url + "/token", "GITHUB_TOKEN_URL_AUTH_FILE": "/secrets/endpoint-auth"])
        XCTAssertEqual(try ghToken(root), "ghp_first\n", "the first token is in place before the command starts")

        for (mode, cause) in [("500", "answered HTTP 500"), ("malformed", "answered JSON without a \"token\" string")] {
            github.set("endpoint-mode", mode)
            XCTAssertTrue(try eventually { try health(root).outputText.contains(cause) }, "\(mode) shows in health")
            XCTAssertEqual(try health(root).status, .exited(1))
            XCTAssertEqual(try ghToken(root), "ghp_first\n", "the last good token stays")
        }
        github.set("endpoint", "ghp_revoked")
        github.set("endpoint-mode", "")
        XCTAssertTrue(try eventually { try health(root).outputText.contains("GitHub rejected the token") })
        XCTAssertEqual(try ghToken(root), "ghp_first\n")

        github.set("endpoint", "ghp_second")
        XCTAssertTrue(try eventually { try ghToken(root) == "ghp_second\n" })
        XCTAssertTrue(try eventually { try health(root).status == .exited(0) }, "health recovers")
        stop(run)
        XCTAssertTrue(run.errorText.contains("keeping the last good token"), run.errorText)
        XCTAssertTrue(run.errorText.contains("working again after"), run.errorText)
        for secret in ["ghp_", "s3cret-endpoint-credential"] {
            XCTAssertFalse(run.errorText.contains(secret))
            XCTAssertEqual(try root.files(containing: secret).filter { !$0.hasPrefix("/secrets/") && !$0.hasPrefix("/usr/") && $0 != "/home/dev8/.config/gh/hosts.yml" }, [])
        }
    }

    func test_an_endpoint_that_never_answers_does_not_delay_signal_forwarding() throws {
        let root = try ThrowawayRoot(tools: Self.tools)
        github.set("endpoint-auth", "x")
        try root.write("/secrets/endpoint-auth", "x", mode: 0o400)
        github.set("endpoint", "ghp_first")
        let run = try start(root, ["GITHUB_TOKEN_URL": github.url + "/token", "GITHUB_TOKEN_URL_AUTH_FILE": "/secrets/endpoint-auth",
                                   "BERTH_HTTP_TIMEOUT": "60"])
        github.set("endpoint-mode", "hang")
        let asked = github.requests.count
        XCTAssertTrue(eventually { github.requests.count > asked }, "a refresh is hanging now")
        let berth = try XCTUnwrap(childOf(run.pid))
        var slowest = 0.0
        for _ in 0..<20 {
            let sent = now()
            kill(berth, SIGUSR1)
            XCTAssertEqual(run.readLine(timeout: 5), "\(SIGUSR1)")
            slowest = max(slowest, now() - sent)
        }
        XCTAssertLessThan(slowest, 0.5, "forwarded while the request hangs")
        let stopped = now()
        stop(run)
        XCTAssertLessThan(now() - stopped, 2, "a hanging request does not hold up shutdown")
    }

    func test_bad_settings_fail_the_step_naming_the_variable() throws {
        let root = try ThrowawayRoot(tools: Self.tools)
        for (environment, message) in [
            (["GITHUB_TOKEN_URL": "ftp://x"], "GITHUB_TOKEN_URL='ftp://x': expected an http(s) URL"),
            (["GITHUB_TOKEN_FILE": "/secrets/none", "BERTH_TOKEN_REFRESH_INTERVAL": "5 minutes"],
             "BERTH_TOKEN_REFRESH_INTERVAL='5 minutes': expected a duration from 1 s to 1 d, like 300s, 5m, 1h30m or 90 (seconds)"),
            (["GITHUB_TOKEN_FILE": "/secrets/none", "BERTH_TOKEN_REFRESH_INTERVAL": "2d"],
             "BERTH_TOKEN_REFRESH_INTERVAL='2d': expected a duration from 1 s to 1 d"),
            (["GITHUB_TOKEN_URL": github.url + "/token", "GITHUB_TOKEN_URL_AUTH_FILE": "/secrets/missing"],
             "GITHUB_TOKEN_URL_AUTH_FILE=/secrets/missing: cannot read: No such file or directory"),
        ] {
            let run = try root.berth(["provision", "--only", "token-refresh"],
                                     environment: ["PATH": "/usr/bin:/bin", "GITHUB_API_URL": github.url].merging(environment) { $1 })
            XCTAssertEqual(run.wait(), .exited(1))
            XCTAssertTrue(run.errorText.contains(message), run.errorText)
        }
    }

    func test_failures_back_off_from_ten_seconds_to_the_interval() {
        XCTAssertEqual((0...6).map { TokenRefresher.delay(afterFailures: $0, interval: .seconds(300)) },
                       [.seconds(300), .seconds(10), .seconds(20), .seconds(40), .seconds(80), .seconds(160), .seconds(300)])
        XCTAssertEqual(TokenRefresher.delay(afterFailures: 3, interval: .seconds(1)), .seconds(1))
        XCTAssertEqual(TokenRefresher.delay(afterFailures: 1000, interval: .seconds(600)), .seconds(600))
    }
}
