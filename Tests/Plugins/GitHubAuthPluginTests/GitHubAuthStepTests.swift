import Foundation
import Glibc
import TestSupport
import XCTest

/// github-auth end to end: berth as PID 1 chrooted in a throwaway root with
/// Debian's gh and git, against a fake GitHub API on 127.0.0.1.
final class GitHubAuthStepTests: XCTestCase {
    static let tools = ["/usr/bin/gh", "/usr/bin/git", "/usr/bin/env", "/usr/lib/x86_64-linux-gnu/libcurl.so.4"]
    var github: FakeGitHub!

    override func setUpWithError() throws {
        github = try FakeGitHub()
        github.users(["ghp_good1": ("octocat", 583231, "The Octocat", nil), "ghp_good2": ("octocat", 583231, "The Octocat", nil)])
    }

    override func tearDown() {
        github = nil
    }

    func environment(_ extra: [String: String]) -> [String: String] {
        ["PATH": "/usr/bin:/bin", "GITHUB_API_URL": github.url, "GH_HOST": "github.com"].merging(extra) { $1 }
    }

    func provision(_ root: ThrowawayRoot, _ extra: [String: String]) throws -> Subprocess {
        try root.provision(environment(extra))
    }

    func step(_ root: ThrowawayRoot) throws -> [String: Any] {
        try XCTUnwrap(root.provisionedSteps()["github-auth"])
    }

    func test_the_token_works_for_gh_and_git_in_a_session_without_the_variable() throws {
        let root = try ThrowawayRoot(tools: Self.tools)
        let run = try provision(root, ["GITHUB_TOKEN": "ghp_good1"])
        XCTAssertEqual(run.status, .exited(0), run.errorText)
        XCTAssertEqual(try step(root)["status"] as? String, "ok", run.errorText)
        XCTAssertTrue(run.outputText.contains("\nPATH=") || run.outputText.hasPrefix("PATH="), "the command ran and printed its environment: \(run.outputText)")
        XCTAssertFalse(run.outputText.contains("GITHUB_TOKEN="), "the command must not inherit the token")

        let token = try root.asUser(["gh", "auth", "token"])
        XCTAssertEqual(token.status, .exited(0), token.errorText)
        XCTAssertEqual(token.outputText, "ghp_good1\n")
        let fill = try root.asUser(["git", "credential", "fill"], input: "protocol=https\nhost=github.com\n\n")
        XCTAssertEqual(fill.status, .exited(0), fill.errorText)
        XCTAssertTrue(fill.outputText.contains("password=ghp_good1\n"), fill.outputText)
        let email = try root.asUser(["git", "config", "--global", "user.email"])
        XCTAssertEqual(email.outputText, "583231+octocat@users.noreply.github.com\n")
        let name = try root.asUser(["git", "config", "--global", "user.name"])
        XCTAssertEqual(name.outputText, "The Octocat\n")

        let hosts = try XCTUnwrap(root.status("/home/dev8/.config/gh/hosts.yml"))
        XCTAssertEqual(hosts.st_mode & 0o7777, 0o600)
        XCTAssertEqual(hosts.st_uid, 1000)
        XCTAssertEqual(try XCTUnwrap(root.status("/home/dev8/.config/gh")).st_mode & 0o7777, 0o700)
        XCTAssertEqual(try root.files(containing: "ghp_good1"), ["/home/dev8/.config/gh/hosts.yml"], "the token is in gh's 0600 file only")
        XCTAssertFalse(run.errorText.contains("ghp_good1") || run.outputText.contains("ghp_good1"))
        XCTAssertEqual(github.requests, ["GET /user Bearer"])
    }

    func test_gh_finds_the_token_even_while_the_variable_is_set() throws {
        // The old entrypoint's `gh auth login --with-token` refuses to run
        // when GITHUB_TOKEN is set (cli/cli#2922); berth never calls it.
        let root = try ThrowawayRoot(tools: Self.tools)
        XCTAssertEqual(try provision(root, ["GH_TOKEN": "ghp_good1"]).status, .exited(0))
        let status = try root.asUser(["GH_TOKEN=ghp_good1", "gh", "auth", "token"])
        XCTAssertEqual(status.outputText, "ghp_good1\n", status.errorText)
    }

    func test_a_restart_writes_the_same_files() throws {
        let root = try ThrowawayRoot(tools: Self.tools)
        try root.write("/home/dev8/.gitconfig", "[alias]\n\tst = status\n")
        chown(root.path + "/home/dev8/.gitconfig", 1000, 1000)
        XCTAssertEqual(try provision(root, ["GITHUB_TOKEN": "ghp_good1"]).status, .exited(0))
        let first = [root.read("/home/dev8/.gitconfig"), root.read("/home/dev8/.config/gh/hosts.yml")]
        XCTAssertEqual(try provision(root, ["GITHUB_TOKEN": "ghp_good1"]).status, .exited(0))
        XCTAssertEqual([root.read("/home/dev8/.gitconfig"), root.read("/home/dev8/.config/gh/hosts.yml")], first)
        let config = try XCTUnwrap(first[0])
        XCTAssertTrue(config.hasPrefix("[alias]\n\tst = status\n"), config)
        XCTAssertEqual(config.components(separatedBy: "# BEGIN berth").count, 2, config)
    }

    func test_a_rejected_token_fails_the_step_and_keeps_the_last_good_files() throws {
        let root = try ThrowawayRoot(tools: Self.tools)
        XCTAssertEqual(try provision(root, ["GITHUB_TOKEN": "ghp_good1"]).status, .exited(0))
        let good = root.read("/home/dev8/.config/gh/hosts.yml")
        let run = try provision(root, ["GITHUB_TOKEN": "ghp_revoked"])
        XCTAssertEqual(run.status, .exited(0), "not strict: the command still runs")
        XCTAssertEqual(try step(root)["status"] as? String, "failed")
        XCTAssertEqual(try step(root)["message"] as? String, "GITHUB_TOKEN: GitHub rejected the token (Bad credentials)")
        XCTAssertTrue(run.errorText.contains("GitHub rejected the token"), run.errorText)
        XCTAssertFalse(run.errorText.contains("ghp_revoked"))
        XCTAssertEqual(root.read("/home/dev8/.config/gh/hosts.yml"), good)
        XCTAssertEqual(try provision(root, ["GITHUB_TOKEN": "ghp_revoked", "BERTH_STRICT": "1"]).status, .exited(1))
    }

    func test_server_errors_malformed_answers_and_timeouts_fail_with_the_cause() throws {
        let root = try ThrowawayRoot(tools: Self.tools)
        let cases: [(mode: String, expected: String)] = [
            ("500", "GITHUB_API_URL: GET \(github.url)/user answered HTTP 500"),
            ("malformed", "GITHUB_API_URL: GET \(github.url)/user answered with malformed JSON (line 1: "),
            ("hang", "GITHUB_API_URL: GET \(github.url)/user failed: Operation timed out after"),
        ]
        for (mode, expected) in cases {
            github.set("user-mode", mode)
            let started = now()
            let run = try provision(root, ["GITHUB_TOKEN": "ghp_good1", "BERTH_HTTP_TIMEOUT": "1"])
            XCTAssertEqual(run.status, .exited(0))
            let message = try XCTUnwrap(step(root)["message"] as? String, mode)
            XCTAssertTrue(message.hasPrefix(expected), "\(mode): \(message)")
            XCTAssertLessThan(now() - started, 10, "\(mode): the request timeout bounds the step")
            XCTAssertNil(root.status("/home/dev8/.config/gh/hosts.yml"), "nothing written on \(mode)")
        }
        github.set("user-mode", "slow")
        XCTAssertEqual(try provision(root, ["GITHUB_TOKEN": "ghp_good1"]).status, .exited(0))
        XCTAssertEqual(try step(root)["status"] as? String, "ok", "a slow answer within the timeout is fine")
    }

    func test_hostile_user_answers_are_refused_by_the_fetch_helper_and_nothing_is_written() throws {
        let root = try ThrowawayRoot(tools: Self.tools)
        let cases: [(mode: String, expected: String)] = [
            ("huge", "GITHUB_API_URL: GET \(github.url)/user failed: answer larger than 1048576 bytes"),
            ("newline-login", "GITHUB_API_URL: GET \(github.url)/user answered a login that is not a GitHub login"),
            ("control-login", "GITHUB_API_URL: GET \(github.url)/user answered a login that is not a GitHub login"),
            ("malformed", "GITHUB_API_URL: GET \(github.url)/user answered with malformed JSON"),
        ]
        for (mode, expected) in cases {
            github.set("user-mode", mode)
            let run = try provision(root, ["GITHUB_TOKEN": "ghp_good1"])
            XCTAssertEqual(run.status, .exited(0))
            let message = try XCTUnwrap(step(root)["message"] as? String, mode)
            XCTAssertTrue(message.hasPrefix(expected), "\(mode): \(message)")
            XCTAssertTrue(run.errorText.contains(expected), "\(mode): \(run.errorText)")
            XCTAssertNil(root.status("/home/dev8/.config/gh/hosts.yml"), "nothing written on \(mode)")
            XCTAssertNil(root.status("/home/dev8/.gitconfig"), "nothing written on \(mode)")
            XCTAssertEqual(try root.files(containing: "octo").filter { !$0.hasPrefix("/usr/") && !$0.hasPrefix("/lib") }, [], "the login reached no file on \(mode)")
        }
    }

    func test_sigterm_while_github_hangs_ends_berth_within_a_second() throws {
        let root = try ThrowawayRoot(tools: Self.tools)
        github.set("user-mode", "hang")
        let run = try root.berth(["--", "/testkit", "env"], environment: environment(["GITHUB_TOKEN": "ghp_good1"]))
        let deadline = now() + 10
        while github.requests.isEmpty && now() < deadline { usleep(20_000) }
        XCTAssertEqual(github.requests.count, 1, "the request is under way")
        // The token is on its way to GitHub now: it must be in no argv.
        let cmdlines = try Subprocess(["sh", "-c", "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '"], environment: ["PATH": "/usr/bin:/bin"])
        cmdlines.wait()
        XCTAssertTrue(cmdlines.outputText.contains("cat /proc/[0-9]*/cmdline"), "the scan read argv (its own shell's among them)")
        XCTAssertTrue(cmdlines.outputText.contains("fetch github-user"), "the scan saw the fetch helper carrying the token: \(cmdlines.outputText)")
        XCTAssertFalse(cmdlines.outputText.contains("ghp_good1"))
        let berth = try XCTUnwrap(childOf(run.pid), "unshare's child is berth")
        let started = now()
        kill(berth, SIGTERM)
        XCTAssertEqual(run.wait(timeout: 5), .exited(128 + SIGTERM))
        XCTAssertLessThan(now() - started, 1.0)
        XCTAssertNil(root.status("/home/dev8/.config/gh/hosts.yml"))
    }

    func test_the_token_can_come_from_a_file_and_both_forms_at_once_are_refused() throws {
        let root = try ThrowawayRoot(tools: Self.tools)
        try root.write("/secrets/token", "ghp_good2\n", mode: 0o400)
        XCTAssertEqual(try provision(root, ["GITHUB_TOKEN_FILE": "/secrets/token"]).status, .exited(0))
        XCTAssertEqual(try root.asUser(["gh", "auth", "token"]).outputText, "ghp_good2\n")
        _ = try provision(root, ["GITHUB_TOKEN_FILE": "/secrets/token", "GITHUB_TOKEN": "ghp_good1"])
        XCTAssertEqual(try step(root)["message"] as? String, "GITHUB_TOKEN and GITHUB_TOKEN_FILE are both set: set one of them")
        try root.write("/secrets/bad", "ghp_one\nghp_two\n", mode: 0o400)
        _ = try provision(root, ["GITHUB_TOKEN_FILE": "/secrets/bad"])
        XCTAssertEqual(try step(root)["message"] as? String, "GITHUB_TOKEN_FILE: not a GitHub token (only letters, digits, '_', '-' and '.' may appear in one)")
    }

    func test_without_gh_git_gets_the_token_from_its_store_helper() throws {
        let root = try ThrowawayRoot(tools: ["/usr/bin/git", "/usr/bin/env", "/usr/lib/x86_64-linux-gnu/libcurl.so.4"])
        XCTAssertEqual(try provision(root, ["GITHUB_TOKEN": "ghp_good1"]).status, .exited(0))
        XCTAssertEqual(try step(root)["status"] as? String, "ok")
        let store = try XCTUnwrap(root.status("/home/dev8/.config/berth/git-credentials"))
        XCTAssertEqual(store.st_mode & 0o7777, 0o600)
        let fill = try root.asUser(["git", "credential", "fill"], input: "protocol=https\nhost=github.com\n\n")
        XCTAssertTrue(fill.outputText.contains("username=octocat\npassword=ghp_good1\n"), fill.outputText + fill.errorText)
    }

    func test_without_gh_or_git_the_step_is_skipped_with_the_reason() throws {
        let root = try ThrowawayRoot()
        XCTAssertEqual(try provision(root, ["GITHUB_TOKEN": "ghp_good1"]).status, .exited(0))
        XCTAssertEqual(try step(root)["reason"] as? String, "neither gh nor git is installed")
    }
}
