import Foundation
import Glibc
import TestSupport
import XCTest

/// devcontainer.json's hooks in real containers of the base image, the
/// workspace on a volume: a login during a long hook is not blocked and
/// sees what is still running; a new container on the same volume runs
/// postStart again and not postCreate; a server a hook started with nohup
/// keeps running and is counted.
final class SetupTaskImageTests: ImageTestCase {
    /// The container's log, stdout (what hooks print) then stderr (berth's
    /// own lines and what hooks say on stderr), once `until` holds, or as
    /// it is after 60 s.
    func logs(of name: String, until: (String) -> Bool) throws -> String {
        var log = ""
        let deadline = now() + 60
        while now() < deadline {
            let run = try docker(["logs", name])
            log = run.outputText + run.errorText
            if until(log) { break }
            usleep(200_000)
        }
        return log
    }

    func test_a_login_during_a_long_hook_is_not_blocked_and_a_new_container_reruns_only_post_start() throws {
        let volume = "berth-test-workspace-\(getpid())-\(Int.random(in: 0..<1_000_000))"
        defer { _ = try? docker(["volume", "rm", "-f", volume]) }
        // The volume takes /workspace's owner (dev8) from the image.
        let setup = try docker(["run", "--rm", "-v", "\(volume):/workspace", "--entrypoint", "/bin/sh", Self.image, "-c", """
            mkdir -p /workspace/.devcontainer && cat > /workspace/.devcontainer/devcontainer.json <<'JSON'
            {
              // a slow create step, and a server left running at each start
              "postCreateCommand": "echo created >> /workspace/created.log; sleep 6",
              "postStartCommand": "echo started >> /workspace/started.log; nohup sleep 300 >/dev/null 2>&1 &",
            }
            JSON
            chown -R dev8:dev8 /workspace
            """])
        XCTAssertEqual(setup.status, .exited(0), setup.errorText)

        let (name, port) = try start(["SSH_PUBLIC_KEY": publicKey], flags: ["-v", "\(volume):/workspace"])
        XCTAssertNotNil(try waitForLogin(port, since: now()))
        var running = ""
        let deadline = now() + 30
        while now() < deadline {
            running = try ssh(port, "bash -lc true").outputText
            if running.contains("postCreate") { break }
            usleep(200_000)
        }
        XCTAssertTrue(running.hasPrefix("berth: setting up: postCreate running for ") && running.hasSuffix(" (berth logs postCreate)\n"),
                      "one line at login while postCreate runs: \(running)")
        XCTAssertFalse(try docker(["logs", name]).errorText.contains("berth: postCreate: done"), "the login came back while the hook still ran")
        let log = try logs(of: name) { $0.contains("berth: postStart: done") }
        XCTAssertTrue(log.contains("berth: postStart: done after ") && log.contains("; 1 process left running (kept;"), log)
        XCTAssertEqual(try ssh(port, "bash -lc true").outputText, "", "nothing to say once set-up is over")
        let status = try docker(["exec", name, "berth", "status"]).outputText
        XCTAssertTrue(status.split(separator: "\n").contains { $0.hasPrefix("postStart ") && $0.contains(" 1 process ") }, status)
        XCTAssertEqual(try exec(name, "pgrep -u dev8 -x sleep | wc -l").outputText, "1\n", "the server postStart left is still running")
        XCTAssertEqual(try docker(["stop", name], timeout: 30).status, .exited(0))

        let (again, _) = try start(["SSH_PUBLIC_KEY": publicKey], flags: ["-v", "\(volume):/workspace"])
        let second = try logs(of: again) { $0.contains("berth: postStart: done") }
        XCTAssertTrue(second.contains("postCreate | ran for this workspace at "), second)
        XCTAssertEqual(try exec(again, "cat /workspace/created.log /workspace/started.log").outputText, "created\nstarted\nstarted\n")
        XCTAssertEqual(try exec(again, "git -C /workspace status --porcelain 2>/dev/null; ls -a /workspace/.berth").outputText.contains("hooks"), true)
    }

    func test_dotfiles_are_cloned_with_real_git_installed_before_the_hooks_and_not_again_on_restart() throws {
        let volume = "berth-test-dotfiles-\(getpid())-\(Int.random(in: 0..<1_000_000))"
        defer { _ = try? docker(["volume", "rm", "-f", volume]) }
        // A dotfiles repository with an install script, made with the image's git.
        let setup = try docker(["run", "--rm", "-v", "\(volume):/srv", "--entrypoint", "/bin/sh", Self.image, "-c", """
            set -e; git init -q -b main /srv/dotfiles; cd /srv/dotfiles
            printf '#!/bin/sh\\necho "installed from $(basename "$PWD")" >> "$HOME/.installed"\\n' > install.sh; chmod +x install.sh
            printf 'alias ll="ls -l"\\n' > .bash_aliases
            git add -A; git -c user.name=t -c user.email=t@t commit -qm dotfiles; chown -R dev8:dev8 /srv/dotfiles
            """])
        XCTAssertEqual(setup.status, .exited(0), setup.errorText)
        let (name, _) = try start(["DOTFILES_REPO": "file:///srv/dotfiles"], flags: ["-v", "\(volume):/srv:ro"], port: nil)
        let log = try logs(of: name) { $0.contains("berth: dotfiles: done") || $0.contains("berth: dotfiles: failed") }
        XCTAssertTrue(log.contains("berth: dotfiles: done after "), log)
        XCTAssertEqual(try exec(name, "cat /home/dev8/.installed; stat -c %U /home/dev8/.dotfiles/install.sh").outputText,
                       "installed from .dotfiles\ndev8\n", "cloned and installed as dev8")
        XCTAssertEqual(try docker(["restart", name], timeout: 30).status, .exited(0))
        let again = try logs(of: name) { $0.components(separatedBy: "berth: dotfiles: done after ").count - 1 >= 2 }
        XCTAssertEqual(again.components(separatedBy: "berth: dotfiles: done after ").count - 1, 2, again)
        XCTAssertEqual(try exec(name, "cat /home/dev8/.installed").outputText, "installed from .dotfiles\n", "not installed twice")
        XCTAssertTrue(again.contains("already installed"), again)
    }

    func test_post_attach_runs_at_each_ssh_session_without_the_session_waiting_for_it() throws {
        let volume = "berth-test-attach-\(getpid())-\(Int.random(in: 0..<1_000_000))"
        defer { _ = try? docker(["volume", "rm", "-f", volume]) }
        let setup = try docker(["run", "--rm", "-v", "\(volume):/workspace", "--entrypoint", "/bin/sh", Self.image, "-c", """
            printf '{ "postAttachCommand": "sleep 2; echo attached >> /workspace/attached.log" }\\n' > /workspace/.devcontainer.json
            chown -R dev8:dev8 /workspace
            """])
        XCTAssertEqual(setup.status, .exited(0), setup.errorText)
        let (name, port) = try start(["SSH_PUBLIC_KEY": publicKey], flags: ["-v", "\(volume):/workspace"])
        XCTAssertNotNil(try waitForLogin(port, since: now()))
        func attachedRuns() throws -> Int {
            Int(try exec(name, "cat /workspace/attached.log 2>/dev/null | wc -l").outputText.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
        }
        // The login above was a session: its postAttach ran once postStart ended.
        let deadline = now() + 30
        while try attachedRuns() < 1, now() < deadline { usleep(200_000) }
        while try docker(["exec", name, "berth", "status"]).outputText.split(separator: "\n")
                .contains(where: { $0.hasPrefix("postAttach ") && !$0.contains(" done ") }), now() < deadline { usleep(200_000) }
        let before = try attachedRuns()
        XCTAssertGreaterThanOrEqual(before, 1)
        XCTAssertEqual(try ssh(port, "echo in").outputText, "in\n", "the session's own output is all it shows")
        XCTAssertEqual(try attachedRuns(), before, "the session ended before its postAttach did: it did not wait for it")
        let again = now() + 30
        while try attachedRuns() < before + 1, now() < again { usleep(200_000) }
        XCTAssertEqual(try attachedRuns(), before + 1, "this session's postAttach ran")
        let logs = try docker(["logs", name]).errorText
        XCTAssertFalse(logs.contains("has no postAttachCommand"), logs)
    }

    /// The three forms (comments, trailing commas), a failing and a hanging
    /// hook, a masked secret, and a changed command run again in a new
    /// container on the same workspace volume.
    func test_three_forms_a_failing_and_a_hanging_hook_a_masked_key_and_a_changed_command_in_containers() throws {
        let volume = "berth-test-forms-\(getpid())-\(Int.random(in: 0..<1_000_000))"
        defer { _ = try? docker(["volume", "rm", "-f", volume]) }
        func write(_ json: String) throws {
            let encoded = Data(json.utf8).base64EncodedString()
            let made = try docker(["run", "--rm", "-v", "\(volume):/workspace", "--entrypoint", "/bin/sh", Self.image, "-c",
                                   "mkdir -p /workspace/.devcontainer && echo \(encoded) | base64 -d > /workspace/.devcontainer/devcontainer.json"
                                   + " && chown -R dev8:dev8 /workspace"])
            XCTAssertEqual(made.status, .exited(0), made.errorText)
        }
        let forms = """
        {
          // a failing string, a hanging array, parallel members, a secret
          "onCreateCommand": "echo on-create as $(id -un); exit 3",
          "updateContentCommand": ["sleep", "30"],
          "postCreateCommand": { "one": "echo from-one", "two": ["sh", "-c", "echo from-two"], },
          "postStartCommand": "echo key=$OPENAI_API_KEY",
        }
        """
        try write(forms)
        let key = "sk-image-test-" + String(Int.random(in: 100_000_000..<999_999_999))
        let environment = ["OPENAI_API_KEY": key, "BERTH_HOOK_TIMEOUT": "2s"]
        let (first, _) = try start(environment, flags: ["-v", "\(volume):/workspace"], port: nil)
        let log = try logs(of: first) { $0.contains("berth: postStart: done") }
        for line in ["onCreate | on-create as dev8", "berth: onCreate: failed: exited with status 3 after ",
                     "updateContent | timed out after 2 s (BERTH_HOOK_TIMEOUT)", "berth: updateContent: failed: exited with status 124 after ",
                     "postCreate | one | from-one", "postCreate | two | from-two", "postStart | key=***"] {
            XCTAssertTrue(log.contains(line), "\(line): \(log)")
        }
        XCTAssertFalse(log.contains(key), "the key never reaches the log")
        let health = try docker(["exec", first, "berth", "health"])
        XCTAssertEqual(health.status, .exited(0), "failed hooks do not make it unhealthy: \(health.outputText)")
        XCTAssertTrue(health.outputText.contains("set-up: onCreate failed: exited with status 3 (berth logs onCreate)"), health.outputText)
        XCTAssertEqual(try docker(["rm", "-f", first]).status, .exited(0))

        // The same workspace, postCreate's command changed: it runs again,
        // the unchanged ones do not.
        try write(forms.replacingOccurrences(of: "from-one", with: "from-one-changed"))
        let (second, _) = try start(environment, flags: ["-v", "\(volume):/workspace"], port: nil)
        let again = try logs(of: second) { $0.contains("berth: postStart: done") }
        XCTAssertTrue(again.contains("postCreate | one | from-one-changed"), again)
        XCTAssertTrue(again.contains("onCreate | ran for this workspace at "), again)
        XCTAssertTrue(again.contains("updateContent | ran for this workspace at "), again)
    }
}
