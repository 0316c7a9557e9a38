import Foundation
import Glibc
import TestSupport
import XCTest

/// Issue 11 item 9 through the real steps: a value with a newline (or another
/// control character) must never add lines to the config file it goes into.
/// Each case first provisions good values, then the injection; the step must
/// fail naming where the value came from, and the file must stay byte for
/// byte as the good run left it.
final class ConfigInjectionTests: XCTestCase {
    static let githubTools = ["/usr/bin/gh", "/usr/bin/git", "/usr/bin/env", "/usr/lib/x86_64-linux-gnu/libcurl.so.4"]
    static let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl injection"
    /// What an attacker would append: a git section that runs a command.
    static let gitSection = "\n[core]\n\tsshCommand = touch /tmp/pwned"

    struct Case {
        let attack: String
        let step: String
        let file: String
        let source: String
        var tools: [String] = []
        var withSSH = false
        /// Written before the runs (a file berth installed earlier).
        var previous: [String: String] = [:]
        var passwd: String?
        let good: [String: String]
        let bad: [String: String]
    }

    var github: FakeGitHub!

    override func setUpWithError() throws {
        github = try FakeGitHub()
        github.users([
            "ghp_plain": ("octocat", 583231, "The Octocat", nil),
            "ghp_evilname": ("octocat", 583231, "Eve\\n[core]\\n\\tsshCommand = touch /tmp/pwned", nil),
            "ghp_evilmail": ("octocat", 583231, "The Octocat", "eve@example.com\\n[core]\\n\\tsshCommand = touch /tmp/pwned"),
        ])
    }

    override func tearDown() {
        github = nil
    }

    var cases: [Case] {
        let gitHub = ["GITHUB_TOKEN": "ghp_plain", "GITHUB_API_URL": github.url, "GH_HOST": "github.com"]
        let userWithEscape = "root:x:0:0:root:/root:/bin/sh\nev\u{1b}il:x:1000:1000:dev8:/home/dev8:/bin/sh\nsshd:x:102:65534::/run/sshd:/usr/sbin/nologin\n"
        return [
            Case(attack: "GIT_USER_NAME adds a [core] section to .gitconfig", step: "github-auth", file: "/home/dev8/.gitconfig",
                 source: "GIT_USER_NAME", tools: Self.githubTools,
                 good: gitHub.merging(["GIT_USER_NAME": "Eve"]) { $1 }, bad: gitHub.merging(["GIT_USER_NAME": "Eve" + Self.gitSection]) { $1 }),
            Case(attack: "GIT_USER_EMAIL adds a [core] section to .gitconfig", step: "github-auth", file: "/home/dev8/.gitconfig",
                 source: "GIT_USER_EMAIL", tools: Self.githubTools,
                 good: gitHub.merging(["GIT_USER_EMAIL": "eve@example.com"]) { $1 }, bad: gitHub.merging(["GIT_USER_EMAIL": "eve@example.com" + Self.gitSection]) { $1 }),
            // Refused by the fetch helper, which parses GitHub's answer
            // (berth then names the API it came from).
            Case(attack: "the GitHub profile name adds a [core] section to .gitconfig", step: "github-auth", file: "/home/dev8/.gitconfig",
                 source: "GITHUB_API_URL", tools: Self.githubTools,
                 good: gitHub, bad: gitHub.merging(["GITHUB_TOKEN": "ghp_evilname"]) { $1 }),
            // Refused by the fetch helper, which parses GitHub's answer
            // (berth then names the API it came from).
            Case(attack: "the GitHub profile email adds a [core] section to .gitconfig", step: "github-auth", file: "/home/dev8/.gitconfig",
                 source: "GITHUB_API_URL", tools: Self.githubTools,
                 good: gitHub, bad: gitHub.merging(["GITHUB_TOKEN": "ghp_evilmail"]) { $1 }),
            Case(attack: "GH_HOST adds a host entry to gh's hosts.yml", step: "github-auth", file: "/home/dev8/.config/gh/hosts.yml",
                 source: "GH_HOST", tools: Self.githubTools, good: gitHub, bad: gitHub.merging(["GH_HOST": "github.com\nghe.corp:"]) { $1 }),
            Case(attack: "ANTHROPIC_API_KEY adds a command to the AI env file", step: "ai-cli", file: "/home/dev8/.config/berth/ai-cli.env",
                 source: "ANTHROPIC_API_KEY", good: ["ANTHROPIC_API_KEY": "sk-ant-1"], bad: ["ANTHROPIC_API_KEY": "sk-ant-1\ntouch /tmp/pwned"]),
            Case(attack: "OPENAI_API_KEY breaks out of Codex's auth.json", step: "ai-cli", file: "/home/dev8/.codex/auth.json",
                 source: "OPENAI_API_KEY", good: ["OPENAI_API_KEY": "sk-1"], bad: ["OPENAI_API_KEY": "sk-1\r\n\"x\": 1"]),
            Case(attack: "GEMINI_API_KEY adds a variable to .gemini/.env", step: "ai-cli", file: "/home/dev8/.gemini/.env",
                 source: "GEMINI_API_KEY", good: ["GEMINI_API_KEY": "g-1"], bad: ["GEMINI_API_KEY": "g-1\nGOOGLE_CLOUD_PROJECT=evil"]),
            Case(attack: "CODE_SERVER_BIND adds auth: none to config.yaml", step: "code-server", file: "/home/dev8/.config/code-server/config.yaml",
                 source: "CODE_SERVER_BIND", good: ["CODE_SERVER_AUTH": "none", "CODE_SERVER_BIND": "127.0.0.1:8080"],
                 bad: ["CODE_SERVER_AUTH": "none", "CODE_SERVER_BIND": "127.0.0.1:8080\ncert: /etc/shadow"]),
            Case(attack: "CODE_SERVER_AUTH adds a key to config.yaml", step: "code-server", file: "/home/dev8/.config/code-server/config.yaml",
                 source: "CODE_SERVER_AUTH", good: ["CODE_SERVER_AUTH": "none"], bad: ["CODE_SERVER_AUTH": "none\nbind-addr: 0.0.0.0:1"]),
            Case(attack: "a carriage return inside an SSH_PUBLIC_KEY line reaches authorized_keys", step: "ssh-keys", file: "/home/dev8/.ssh/authorized_keys",
                 source: "SSH_PUBLIC_KEY: line 1", good: ["SSH_PUBLIC_KEY": Self.key], bad: ["SSH_PUBLIC_KEY": Self.key + "\rcommand=\"touch /tmp/pwned\""]),
            Case(attack: "a control character in BERTH_USER reaches the sshd drop-in", step: "sshd", file: "/etc/ssh/sshd_config.d/berth.conf",
                 source: "BERTH_USER", withSSH: true, previous: ["/etc/ssh/sshd_config.d/berth.conf": "# the previous drop-in\nPort 2222\n"],
                 passwd: userWithEscape, good: [:], bad: ["SSH_PUBLIC_KEY": Self.key, "BERTH_USER": "ev\u{1b}il"]),
            Case(attack: "a control character in BERTH_USER reaches sudoers", step: "sudo", file: "/etc/sudoers.d/berth",
                 source: "BERTH_USER", previous: ["/etc/sudoers.d/berth": "# the previous rule\n"],
                 passwd: userWithEscape, good: [:], bad: ["BERTH_SUDO": "1", "BERTH_USER": "ev\u{1b}il"]),
        ]
    }

    func test_a_newline_or_control_character_in_any_value_never_adds_lines_to_a_config_file() throws {
        for attack in cases {
            let root = try ThrowawayRoot(withSSH: attack.withSSH, tools: attack.tools)
            for (file, text) in attack.previous {
                XCTAssertEqual(system("mkdir -p \"$(dirname '\(root.path + file)')\""), 0)
                try root.write(file, text)
            }
            if !attack.good.isEmpty {
                let good = try provision(root, attack.good)
                XCTAssertEqual(try root.provisionedSteps()[attack.step]?["status"] as? String, "ok", "\(attack.attack): the good run: \(good.errorText)")
            }
            if let passwd = attack.passwd { try root.write("/etc/passwd", passwd) }
            let before = try XCTUnwrap(root.read(attack.file), "\(attack.attack): no \(attack.file) before the attack")
            let beforeStatus = try XCTUnwrap(root.status(attack.file))

            let bad = try provision(root, attack.bad)
            let step = try XCTUnwrap(root.provisionedSteps()[attack.step], "\(attack.attack): \(bad.errorText)")
            XCTAssertEqual(step["status"] as? String, "failed", "\(attack.attack): \(step)")
            let message = step["message"] as? String ?? ""
            // GH_HOST is refused earlier, by github-auth's own host check,
            // in the form NAME='value': (it is no secret).
            XCTAssertTrue(message.hasPrefix(attack.source + ": ") || message.hasPrefix(attack.source + "='"),
                          "\(attack.attack): the message names \(attack.source): \(message)")
            XCTAssertFalse(message.contains("pwned") || message.contains("evil"), "\(attack.attack): the value is not echoed: \(message)")
            XCTAssertEqual(root.read(attack.file), before, "\(attack.attack): the file changed")
            XCTAssertEqual(root.status(attack.file)?.st_ino, beforeStatus.st_ino, "\(attack.attack): the file was replaced")
            XCTAssertEqual(try root.files(containing: "pwned"), [], "\(attack.attack): the injected text reached these files")
        }
    }

    private func provision(_ root: ThrowawayRoot, _ environment: [String: String]) throws -> Subprocess {
        let run = try root.berth(["provision"], environment: ["PATH": "/usr/bin:/bin"].merging(environment) { $1 })
        run.wait(timeout: 60)
        return run
    }
}
