@testable import BerthPlugins
import BerthCore
import BerthProvisioning
import XCTest

final class GitHubAPITests: XCTestCase {
    func test_tokens_with_characters_no_github_token_has_are_refused_naming_the_source() {
        for bad in ["ghp_abc\nX-Evil: 1", "ghp abc", "ghp_\"quoted\"", "tok:en"] {
            XCTAssertThrowsError(try GitHubToken.checked(Secret(Array(bad.utf8)), source: "GITHUB_TOKEN_FILE")) { error in
                XCTAssertTrue("\(error)".hasPrefix("GITHUB_TOKEN_FILE: not a GitHub token"), "\(error)")
                XCTAssertFalse("\(error)".contains("abc"), "the message must not quote the token")
            }
        }
        XCTAssertNoThrow(try GitHubToken.checked(Secret(Array("github_pat_11AAA_bbb".utf8)), source: "GH_TOKEN"))
    }

    func test_gh_token_wins_over_github_token_as_in_gh() throws {
        let settings = Settings(environment: ["GITHUB_TOKEN": "ghp_second", "GH_TOKEN": "ghp_first"])
        XCTAssertEqual(try GitHubToken.fromSettings(settings)?.secret.text, "ghp_first")
        XCTAssertEqual(try GitHubToken.fromSettings(settings)?.source, "GH_TOKEN")
    }

    func test_the_host_follows_the_api_url() throws {
        func host(_ environment: [String: String]) throws -> String {
            let settings = Settings(environment: environment)
            return try GitHubAPI.fromSettings(settings).host(settings: settings)
        }
        XCTAssertEqual(try host([:]), "github.com")
        XCTAssertEqual(try host(["GITHUB_API_URL": "https://ghe.example.com/api/v3/"]), "ghe.example.com")
        XCTAssertEqual(try host(["GITHUB_API_URL": "http://127.0.0.1:9/", "GH_HOST": "github.com"]), "github.com")
        XCTAssertEqual(try host(["GITHUB_API_URL": "https://robot:s3cret@ghe.example.com/api/v3?sig=x"]), "ghe.example.com",
                       "userinfo never becomes the host written to hosts.yml and .gitconfig")
        XCTAssertEqual(try host(["GITHUB_API_URL": "https://ghe.example.com?sig=s3cret"]), "ghe.example.com")
        XCTAssertThrowsError(try host(["GITHUB_API_URL": "ftp://x"]))
        XCTAssertThrowsError(try host(["GITHUB_API_URL": "https://api.example.com/a b"]), "a space would break the line to the fetch helper")
    }

    func test_an_answer_without_login_is_an_error_not_a_crash() {
        for text in ["{\"login\": \"octocat\", ", "[]", "{\"id\": 1}", "<html>"] {
            guard case .invalid(let what) = GitHubUserFetch.outcome(status: 200, body: text) else {
                return XCTFail("accepted \(text)")
            }
            XCTAssertTrue(what.hasPrefix("with malformed JSON") || what == "without a user's login and id", what)
        }
        guard case .answered(let fields) = GitHubUserFetch.outcome(status: 200, body: "{\"login\":\"octocat\",\"id\":583231,\"name\":null,\"email\":null}") else {
            return XCTFail("refused a good answer")
        }
        XCTAssertEqual(try GitHubUserFetch.identity(from: fields).get().commitEmail, "583231+octocat@users.noreply.github.com")
    }

    func test_other_hosts_in_hosts_yml_are_kept_and_ours_replaced() throws {
        let user = UserAccount(name: "dev8", uid: 1000, gid: 1000, home: "/home/dev8", shell: "/bin/sh", groups: [])
        let credentials = GitHubCredentials(user: user, host: "github.com", gh: "/usr/bin/gh", gitName: nil, gitEmail: nil)
        let existing = "ghe.corp:\n    oauth_token: gho_keep\n    user: me\ngithub.com:\n    oauth_token: ghp_old\n    user: old\n"
        let text = try credentials.hostsYAML(GitHubToken(secret: Secret(Array("ghp_new".utf8)), source: "GH_TOKEN"), login: "octocat", existing: existing)
        XCTAssertTrue(text.hasPrefix("ghe.corp:\n    oauth_token: gho_keep\n    user: me\ngithub.com:\n"), text)
        XCTAssertFalse(text.contains("ghp_old"))
        XCTAssertEqual(text.components(separatedBy: "oauth_token: ghp_new").count, 3)
    }

    func test_the_users_own_git_identity_stands_unless_the_variables_set_one() throws {
        let user = UserAccount(name: "dev8", uid: 1000, gid: 1000, home: "/home/dev8", shell: "/bin/sh", groups: [])
        let identity = GitHubIdentity(login: "octocat", id: 1, name: "The Octocat", email: nil)
        let own = "[user]\n\tname = Me Myself\n"
        let fromAPI = GitHubCredentials(user: user, host: "github.com", gh: nil, gitName: nil, gitEmail: nil)
        let text = try fromAPI.gitConfigText(identity: identity, existing: own).text
        XCTAssertFalse(text.contains("The Octocat"), text)
        XCTAssertTrue(text.contains("email = \"1+octocat@users.noreply.github.com\""), text)
        let fromVariables = GitHubCredentials(user: user, host: "github.com", gh: nil, gitName: "A \"B\" C", gitEmail: nil)
        XCTAssertTrue(try fromVariables.gitConfigText(identity: identity, existing: own).text.contains("name = \"A \\\"B\\\" C\""))
    }

    func test_urls_are_shown_without_userinfo_query_or_fragment() {
        XCTAssertEqual(redactedURL("https://user:pass@tokens.example.com:8443/v1/token?access=abc&x=1#frag"), "https://***@tokens.example.com:8443/v1/token?***")
        XCTAssertEqual(redactedURL("https://api.github.com"), "https://api.github.com")
        XCTAssertEqual(redactedURL("http://127.0.0.1:9/user"), "http://127.0.0.1:9/user")
        XCTAssertEqual(redactedURL("https://a@b@host/p"), "https://***@host/p", "the last @ ends the userinfo")
        XCTAssertEqual(redactedURL("https://host?token=x"), "https://host?***")
        XCTAssertEqual(redactedURL("https://host/p#s3cret"), "https://host/p?***")
        XCTAssertEqual(redactedURL("user:pw@host/x?y"), "***@host/x?***", "no scheme still hides the credential")
        XCTAssertEqual(redactedURL("https://host/a\nforged: line"), "https://host/a?forged: line")
    }

    func test_pid_1_refuses_a_helper_answer_out_of_protocol() {
        let keys: Set<String> = ["login", "id", "name", "email"]
        func refused(_ text: String) -> Bool {
            if case .failure = FetchOutcome.parse(Array(text.utf8), answerKeys: keys) { return true }
            return false
        }
        XCTAssertEqual(try FetchOutcome.parse(Array("result=ok\nlogin=octocat\nid=1\n".utf8), answerKeys: keys).get(), .answered(["login": "octocat", "id": "1"]))
        XCTAssertEqual(try FetchOutcome.parse(Array("result=status\nstatus=502\n".utf8), answerKeys: keys).get(), .status(502))
        XCTAssertTrue(refused("result=ok\nlogin=a\nlogin=b\n"), "a key twice")
        XCTAssertTrue(refused("result=ok\nlogin=octo\u{1b}[31mcat\n"), "a control character")
        XCTAssertTrue(refused("result=ok\nlogin=octo\rcat\n"), "a carriage return")
        XCTAssertTrue(refused("result=ok\ntoken=ghp_x\n"), "a key this verb does not answer")
        XCTAssertTrue(refused("result=ok\nlogin=octocat"), "no final newline")
        XCTAssertTrue(refused("result=ok\nname=" + String(repeating: "x", count: 1025) + "\n"), "a value over 1024 bytes")
        XCTAssertTrue(refused("result=ok\n" + String(repeating: "name=x\n", count: 1200)), "over 8 KiB")
        XCTAssertTrue(refused("result=status\nstatus=9999\n"), "not an HTTP status")
        XCTAssertTrue(refused("result=rejected\n"), "a rejection without its message")
        XCTAssertTrue(refused("result=maybe\n"), "an unknown result")
        XCTAssertTrue(refused("HTTP/1.1 200 OK\n"), "an HTTP response is not an answer")
        var invalidUTF8 = Array("result=ok\nname=".utf8)
        invalidUTF8 += [0xff, 0xfe, 0x0a]
        if case .success = FetchOutcome.parse(invalidUTF8, answerKeys: keys) { XCTFail("invalid UTF-8 accepted") }
    }

    func test_an_identity_with_a_forged_login_name_or_email_is_refused_even_from_the_helper() {
        XCTAssertNoThrow(try GitHubUserFetch.identity(from: ["login": "octo-cat_1", "id": "5", "name": "Zoë O'Hara"]).get())
        for fields in [["login": "octo cat", "id": "1"], ["login": "../etc", "id": "1"], ["login": "octocat", "id": "-1"], ["login": "octocat", "id": "x"],
                       ["login": String(repeating: "a", count: 40), "id": "1"], ["login": "octocat", "id": "1", "email": String(repeating: "e", count: 300)]] {
            if case .success = GitHubUserFetch.identity(from: fields) { XCTFail("accepted \(fields)") }
        }
        for body in ["{\"login\": \"octo\\ncat\", \"id\": 1}", "{\"login\": \"octocat\", \"id\": 1, \"name\": \"a\\u001bb\"}"] {
            guard case .invalid = GitHubUserFetch.outcome(status: 200, body: body) else { return XCTFail("the helper accepted \(body)") }
        }
    }
}
