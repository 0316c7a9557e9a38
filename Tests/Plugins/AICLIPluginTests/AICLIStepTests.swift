import Foundation
import Glibc
import TestSupport
import XCTest

/// ai-cli end to end: berth as PID 1 in a throwaway root with bash; the keys
/// are read back the way a user's shells get them.
final class AICLIStepTests: XCTestCase {
    static let tools = ["/bin/bash", "/usr/bin/env"]
    let keys = ["ANTHROPIC_API_KEY": "sk-ant-api03-testkey_1", "OPENAI_API_KEY": "sk-proj-testkey-2", "GEMINI_API_KEY": "AIzaTestKey3"]

    func provision(_ root: ThrowawayRoot, _ environment: [String: String]) throws -> Subprocess {
        try root.provision(environment)
    }

    func step(_ root: ThrowawayRoot) throws -> [String: Any] {
        try XCTUnwrap(root.provisionedSteps()["ai-cli"])
    }

    func test_keys_reach_login_shells_and_terminals_from_a_0600_file_only() throws {
        let root = try ThrowawayRoot(tools: Self.tools)
        // Debian's skeleton .bashrc returns early for non-interactive shells.
        try root.write("/home/dev8/.bashrc", "case $- in\n    *i*) ;;\n      *) return;;\nesac\nalias ll='ls -l'\n")
        chown(root.path + "/home/dev8/.bashrc", 1000, 1000)
        let run = try provision(root, keys)
        XCTAssertEqual(run.status, .exited(0), run.errorText)
        XCTAssertEqual(try step(root)["status"] as? String, "ok", run.errorText)
        XCTAssertTrue(run.outputText.contains("\nPATH=") || run.outputText.hasPrefix("PATH="), "the command ran and printed its environment: \(run.outputText)")
        for name in keys.keys { XCTAssertFalse(run.outputText.contains(name + "="), "the command does not inherit \(name)") }

        let echo = "echo \"$ANTHROPIC_API_KEY|$OPENAI_API_KEY|$GEMINI_API_KEY\""
        let expected = "sk-ant-api03-testkey_1|sk-proj-testkey-2|AIzaTestKey3\n"
        // SSH session: a login shell. code-server terminal: interactive bash.
        // `ssh host cmd`: bash run by sshd, non-interactive, reads .bashrc.
        for shell in [["/bin/sh", "-l", "-c", echo], ["/bin/bash", "-l", "-c", echo], ["/bin/bash", "-i", "-c", echo]] {
            let session = try root.asUser(shell)
            XCTAssertEqual(session.outputText, expected, "\(shell[0...1]): \(session.errorText)")
        }
        let env = try XCTUnwrap(root.status("/home/dev8/.config/berth/ai-cli.env"))
        XCTAssertEqual(env.st_mode & 0o7777, 0o600)
        XCTAssertEqual(env.st_uid, 1000)
        XCTAssertEqual(try XCTUnwrap(root.status("/home/dev8/.config/berth")).st_mode & 0o7777, 0o700)
        XCTAssertEqual(try root.files(containing: "sk-ant-api03-testkey_1"), ["/home/dev8/.config/berth/ai-cli.env"])
        XCTAssertEqual(Set(try root.files(containing: "sk-proj-testkey-2")), ["/home/dev8/.config/berth/ai-cli.env", "/home/dev8/.codex/auth.json"])
        XCTAssertEqual(Set(try root.files(containing: "AIzaTestKey3")), ["/home/dev8/.config/berth/ai-cli.env", "/home/dev8/.gemini/.env"])
        for file in ["/home/dev8/.codex/auth.json", "/home/dev8/.gemini/.env"] {
            let info = try XCTUnwrap(root.status(file))
            XCTAssertEqual(info.st_mode & 0o7777, 0o600, file)
            XCTAssertEqual(info.st_uid, 1000, file)
        }
        let bashrc = try XCTUnwrap(root.read("/home/dev8/.bashrc"))
        XCTAssertTrue(bashrc.hasPrefix("# BEGIN berth"), "before the early return: \(bashrc)")
        XCTAssertTrue(bashrc.hasSuffix("alias ll='ls -l'\n"))
        XCTAssertTrue(root.read("/home/dev8/.claude/settings.json")?.contains("\"apiKeyHelper\": \". /home/dev8/.config/berth/ai-cli.env") == true)
        XCTAssertTrue(root.read("/home/dev8/.gemini/settings.json")?.contains("\"selectedType\": \"gemini-api-key\"") == true)
    }

    func test_a_restart_changes_nothing_and_never_duplicates_a_line() throws {
        let root = try ThrowawayRoot(tools: Self.tools)
        XCTAssertEqual(try provision(root, keys).status, .exited(0))
        let files = ["/home/dev8/.bashrc", "/home/dev8/.profile", "/home/dev8/.config/berth/ai-cli.env", "/home/dev8/.codex/auth.json",
                     "/home/dev8/.local/share/code-server/User/settings.json", "/home/dev8/.claude/settings.json"]
        let first = files.map { root.read($0) }
        XCTAssertEqual(try provision(root, keys).status, .exited(0))
        XCTAssertEqual(files.map { root.read($0) }, first)
        XCTAssertEqual(root.read("/home/dev8/.bashrc")?.components(separatedBy: "ai-cli.env").count, 2)
        // A key removed from the container leaves the env file too.
        XCTAssertEqual(try provision(root, ["OPENAI_API_KEY": "sk-proj-testkey-2"]).status, .exited(0))
        XCTAssertFalse(root.read("/home/dev8/.config/berth/ai-cli.env")?.contains("ANTHROPIC") == true)
        XCTAssertEqual(try provision(root, ["GITHUB_TOKEN": "ghp_x"]).status, .exited(0))
        XCTAssertNil(root.status("/home/dev8/.config/berth/ai-cli.env"), "no key, no file")
        XCTAssertFalse(root.read("/home/dev8/.bashrc")?.contains("ai-cli.env") == true)
    }

    func test_code_server_settings_are_merged_and_the_users_choices_win() throws {
        let root = try ThrowawayRoot(tools: Self.tools)
        let path = "/home/dev8/.local/share/code-server/User/settings.json"
        XCTAssertEqual(system("mkdir -p '\(root.path)/home/dev8/.local/share/code-server/User' && chown -R 1000:1000 '\(root.path)/home/dev8/.local'"), 0)
        let own = "{\n  // my editor\n  \"editor.fontSize\": 15,\n  \"telemetry.telemetryLevel\": \"error\",\n}\n"
        try root.write(path, own)
        chown(root.path + path, 1000, 1000)
        XCTAssertEqual(try provision(root, ["GITHUB_TOKEN": "ghp_x"]).status, .exited(0))
        XCTAssertEqual(try step(root)["status"] as? String, "ok")
        let merged = try XCTUnwrap(root.read(path))
        XCTAssertTrue(merged.contains("// my editor\n  \"editor.fontSize\": 15,\n  \"telemetry.telemetryLevel\": \"error\",\n}"), merged)
        XCTAssertTrue(merged.contains("\"github.copilot.enable\": {\n    \"*\": true\n  },"), merged)
        XCTAssertTrue(merged.contains("\"update.mode\": \"none\","), merged)
        XCTAssertEqual(merged.components(separatedBy: "telemetry.telemetryLevel").count, 2, "the user's value stays, not ours")
    }

    func test_a_settings_file_that_does_not_parse_fails_the_step_and_stays() throws {
        let root = try ThrowawayRoot(tools: Self.tools)
        let path = "/home/dev8/.local/share/code-server/User/settings.json"
        XCTAssertEqual(system("mkdir -p '\(root.path)/home/dev8/.local/share/code-server/User' && chown -R 1000:1000 '\(root.path)/home/dev8/.local'"), 0)
        try root.write(path, "{\n  \"editor.fontSize\": 15\n  \"oops\": 1\n}\n")
        chown(root.path + path, 1000, 1000)
        _ = try provision(root, keys)
        XCTAssertEqual(try step(root)["message"] as? String, "\(path): line 3: expected ',' or '}'; left as it is")
        XCTAssertEqual(root.read(path), "{\n  \"editor.fontSize\": 15\n  \"oops\": 1\n}\n")
        XCTAssertNil(root.status("/home/dev8/.config/berth/ai-cli.env"), "nothing else written either")
    }

    func test_a_key_that_could_break_out_of_the_shell_file_is_refused() throws {
        let root = try ThrowawayRoot(tools: Self.tools)
        _ = try provision(root, ["OPENAI_API_KEY": "sk-'; touch /tmp/pwned; '"])
        XCTAssertEqual(try step(root)["message"] as? String, "OPENAI_API_KEY: not an API key (only letters, digits, '_', '-' and '.' may appear in one)")
        XCTAssertNil(root.status("/home/dev8/.config/berth/ai-cli.env"))
    }
}
