import Foundation
import Glibc
import TestSupport
import XCTest

/// devcontainer.json's hooks as berth's set-up tasks, with berth as PID 1
/// of a throwaway root: the three command forms, the order, what a new
/// container on the same workspace reruns, failures and timeouts, what a
/// hook leaves running, and secrets masked in hook output.
final class SetupTaskTests: XCTestCase {
    var root: ThrowawayRoot!

    override func setUpWithError() throws {
        root = try ThrowawayRoot(tools: ["/bin/sleep", "/bin/cat", "/usr/bin/id", "/usr/bin/nohup", "/usr/bin/setsid", "/bin/pwd", "/usr/bin/env"])
        XCTAssertEqual(system("mkdir -p '\(root.path)/workspace/.devcontainer' && chown -R 1000:1000 '\(root.path)/workspace'"), 0)
    }

    func devcontainer(_ text: String) throws {
        try root.write("/workspace/.devcontainer/devcontainer.json", text)
        chown(root.path + "/workspace/.devcontainer/devcontainer.json", 1000, 1000)
    }

    /// berth with no command (it runs until stopped), its lines in one stream.
    func start(_ extra: [String: String] = [:]) throws -> Subprocess {
        try root.berth([], environment: ["PATH": "/usr/bin:/bin"].merging(extra) { $1 }, oneStream: true)
    }

    func waitFor(_ needle: String, in run: Subprocess, seconds: Double = 30) -> Bool {
        let deadline = now() + seconds
        while !run.outputText.contains(needle), now() < deadline { _ = run.readLine(timeout: 0.1) }
        return run.outputText.contains(needle)
    }

    func stop(_ run: Subprocess) {
        if let berth = childOf(run.pid) { kill(berth, SIGTERM) }
        XCTAssertEqual(run.wait(timeout: 20), .exited(0), run.outputText)
    }

    func position(_ needle: String, in run: Subprocess) throws -> Int {
        let lines = run.outputText.split(separator: "\n").map(String.init)
        return try XCTUnwrap(lines.firstIndex { $0.contains(needle) }, "\(needle): \(run.outputText)")
    }

    func berthVerb(_ arguments: [String], user: String? = nil) throws -> Subprocess {
        // The verbs run inside the root's namespace: chroot is enough, the
        // control socket is a file in it.
        let chroot = ["/usr/sbin/chroot"] + (user.map { ["--userspec=\($0)"] } ?? []) + [root.path, "/berth"]
        let run = try Subprocess(chroot + arguments, environment: ["PATH": "/usr/bin:/bin"])
        run.wait(timeout: 20)
        return run
    }

    static let threeForms = """
    // The spec allows comments and trailing commas.
    {
      "name": "three forms",
      /* a string: /bin/sh -c */
      "onCreateCommand": "echo on-create uid=$(id -u) dir=$(pwd)",
      // an array: exec'd as it is, no shell ($HOME stays as written)
      "updateContentCommand": ["/bin/sh", "-c", "echo update-content \\"$1\\"", "sh", "$HOME"],
      "postCreateCommand": {
        "first": "echo from-first",
        "second": ["/bin/sh", "-c", "echo from-second"],
      },
      "postStartCommand": "echo post-start",
    }
    """

    func test_hooks_run_in_order_as_the_user_in_the_three_forms_and_a_new_container_reruns_only_post_start() throws {
        try devcontainer(Self.threeForms)
        // A key: provisioning has a step to run and report.
        let first = try start(["SSH_PUBLIC_KEY": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJlcnRoLXNldHVwLXRhc2stdGVzdHMtb25seS1rZXk= test"])
        XCTAssertTrue(waitFor("berth: postStart: done", in: first), first.outputText)
        XCTAssertEqual(try position("onCreate | on-create uid=1000 dir=/workspace", in: first) < position("updateContent | update-content $HOME", in: first), true)
        let update = try position("updateContent | update-content $HOME", in: first)
        let members = [try position("postCreate | first | from-first", in: first), try position("postCreate | second | from-second", in: first)]
        let postStart = try position("postStart | post-start", in: first)
        XCTAssertLessThan(update, members.min()!)
        XCTAssertLessThan(members.max()!, postStart)
        let status = try berthVerb(["status"])
        // Services, then the provisioning steps with their times, then the set-up tasks.
        let steps = try XCTUnwrap(status.outputText.range(of: "\nSTEP "), status.outputText)
        let setUp = try XCTUnwrap(status.outputText.range(of: "\nSET-UP "), status.outputText)
        XCTAssertLessThan(steps.lowerBound, setUp.lowerBound)
        XCTAssertTrue(status.outputText.contains("\nssh-keys  "), "a step's row: \(status.outputText)")
        // Each step's record: when, how long, its inputs' fingerprint (not
        // the key itself), when it runs again.
        let report = try XCTUnwrap(root.read("/run/berth/provision.json"))
        let reported = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(report.utf8)) as? [String: Any])?["steps"] as? [[String: Any]])
        let sshKeys = try XCTUnwrap(reported.first { $0["name"] as? String == "ssh-keys" }, report)
        XCTAssertEqual((sshKeys["inputs"] as? String)?.count, 16, report)
        XCTAssertEqual(sshKeys["runs"] as? String, "every start")
        XCTAssertGreaterThan(sshKeys["startedAt"] as? Int ?? 0, 1_700_000_000)
        XCTAssertFalse(report.contains("AAAAC3NzaC1lZDI1NTE5"), "no secret in the report")
        // --json carries the same: the tasks and the steps, marked.
        let json = try berthVerb(["status", "--json"])
        let entries = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.outputText.utf8)) as? [[String: Any]], json.outputText)
        let postCreateEntry = try XCTUnwrap(entries.first { $0["name"] as? String == "postCreate" }, json.outputText)
        XCTAssertEqual(postCreateEntry["task"] as? Bool, true)
        XCTAssertEqual(postCreateEntry["state"] as? String, "done")
        XCTAssertNotNil(postCreateEntry["tookMilliseconds"] as? Int)
        let stepEntry = try XCTUnwrap(entries.first { $0["name"] as? String == "ssh-keys" }, json.outputText)
        XCTAssertEqual(stepEntry["step"] as? Bool, true)
        XCTAssertEqual(stepEntry["inputs"] as? String, sshKeys["inputs"] as? String)
        let postCreateRow = status.outputText.split(separator: "\n").first { $0.hasPrefix("postCreate ") }.map(String.init) ?? ""
        XCTAssertTrue(postCreateRow.contains(" done ") && postCreateRow.contains("exited with status 0") && postCreateRow.hasSuffix("once per workspace, again when the command changes"),
                      status.outputText)
        stop(first)
        XCTAssertEqual(root.read("/workspace/.berth/.gitignore")?.contains("\n*\n"), true, "git ignores berth's records")

        // A new container on the same workspace: the create hooks are
        // remembered, postStart runs again.
        let second = try start()
        XCTAssertTrue(waitFor("berth: postStart: done", in: second), second.outputText)
        let remembered = second.outputText.split(separator: "\n").first { $0.hasPrefix("postCreate | ran for this workspace at ") } ?? ""
        XCTAssertTrue(remembered.contains(" UTC (exited with status 0), command unchanged: not again (berth hooks run postCreate runs it)"),
                      second.outputText)
        XCTAssertFalse(second.outputText.contains("from-first"), second.outputText)
        XCTAssertFalse(second.outputText.contains("on-create uid"), second.outputText)
        XCTAssertTrue(second.outputText.contains("postStart | post-start"), second.outputText)
        // On demand, whatever it remembers.
        let rerun = try berthVerb(["hooks", "run", "postCreate"], user: "1000:1000")
        XCTAssertEqual(rerun.status, .exited(0), rerun.outputText + rerun.errorText)
        XCTAssertTrue(waitFor("postCreate | first | from-first", in: second), second.outputText)
        stop(second)

        // A changed command runs again.
        try devcontainer(Self.threeForms.replacingOccurrences(of: "from-first", with: "from-first-changed"))
        let third = try start()
        XCTAssertTrue(waitFor("berth: postStart: done", in: third), third.outputText)
        XCTAssertTrue(third.outputText.contains("postCreate | first | from-first-changed"), third.outputText)
        XCTAssertFalse(third.outputText.contains("on-create uid"), "onCreate's command did not change: \(third.outputText)")
        stop(third)
    }

    func test_a_file_that_does_not_parse_names_file_and_line_and_runs_no_hook() throws {
        try devcontainer("{\n  \"postCreateCommand\": \"echo should-not-run\",\n  \"postStartCommand\": [1, 2],\n}\n")
        let run = try start()
        XCTAssertTrue(waitFor("berth: postStart: ", in: run), run.outputText)
        stop(run)
        XCTAssertTrue(run.outputText.contains("/workspace/.devcontainer/devcontainer.json: line 3: postStartCommand: "), run.outputText)
        XCTAssertFalse(run.outputText.contains("should-not-run"), run.outputText)
    }

    func test_a_failing_and_a_hanging_hook_are_reported_and_later_hooks_still_run() throws {
        try devcontainer("""
        { "onCreateCommand": "echo failing; exit 3", "postCreateCommand": "echo hanging; exec sleep 60", "postStartCommand": "echo post-start" }
        """)
        let run = try start(["BERTH_HOOK_TIMEOUT": "1s"])
        XCTAssertTrue(waitFor("berth: postStart: done", in: run), run.outputText)
        XCTAssertTrue(run.outputText.contains("berth: onCreate: failed: exited with status 3 after "), run.outputText)
        XCTAssertTrue(run.outputText.contains("postCreate | timed out after 1 s (BERTH_HOOK_TIMEOUT)"), run.outputText)
        XCTAssertTrue(run.outputText.contains("berth: postCreate: failed: exited with status 124 after "), run.outputText)
        XCTAssertLessThan(try position("berth: postCreate: failed", in: run), try position("postStart | post-start", in: run))
        let health = try berthVerb(["health"])
        XCTAssertEqual(health.status, .exited(0), "a failed hook does not make the container unhealthy: \(health.outputText)")
        XCTAssertTrue(health.outputText.contains("set-up: onCreate failed: exited with status 3 (berth logs onCreate)"), health.outputText)
        let logs = try berthVerb(["logs", "onCreate"])
        XCTAssertEqual(logs.outputText, "failing\n", logs.errorText)
        stop(run)
    }

    func test_processes_a_hook_leaves_running_are_counted_and_kept_or_killed() throws {
        try devcontainer("""
        { "postStartCommand": "nohup sleep 60 >/dev/null 2>&1 & setsid sleep 60 </dev/null >/dev/null 2>&1 & (sleep 60; echo never) & echo started" }
        """)
        // nohup's sleep, setsid's sleep (out of the session: found by its
        // environment), and the subshell with its sleep.
        let kept = try start()
        XCTAssertTrue(waitFor("berth: postStart: done", in: kept), kept.outputText)
        XCTAssertTrue(kept.outputText.contains("; 4 processes left running (kept; BERTH_HOOK_LEFTOVERS=kill ends them)"), kept.outputText)
        let status = try berthVerb(["status"])
        XCTAssertTrue(status.outputText.split(separator: "\n").contains { $0.hasPrefix("postStart ") && $0.contains(" 4 processes ") }, status.outputText)
        stop(kept)

        let killed = try start(["BERTH_HOOK_LEFTOVERS": "kill"])
        XCTAssertTrue(waitFor("berth: postStart: done", in: killed), killed.outputText)
        XCTAssertTrue(killed.outputText.contains("; 4 processes left running: SIGTERM"), killed.outputText)
        let deadline = now() + 10
        var left = ""
        while now() < deadline {
            left = try berthVerb(["status"]).outputText
            if left.split(separator: "\n").contains(where: { $0.hasPrefix("postStart ") && $0.contains(" - ") }) { break }
            usleep(100_000)
        }
        XCTAssertTrue(left.split(separator: "\n").contains { $0.hasPrefix("postStart ") && !$0.contains(" processes ") }, left)
        stop(killed)
    }

    func test_a_provisioned_secret_printed_by_a_hook_is_masked_and_the_hook_has_the_ai_key_as_a_session_would() throws {
        try devcontainer(#"{ "postStartCommand": "echo key=$OPENAI_API_KEY" }"#)
        let key = "sk-test-" + String(Int.random(in: 100_000_000..<999_999_999))
        let run = try start(["OPENAI_API_KEY": key])
        XCTAssertTrue(waitFor("berth: postStart: done", in: run), run.outputText)
        XCTAssertTrue(run.outputText.contains("postStart | key=***\n"), "the key reached the hook and was masked: \(run.outputText)")
        XCTAssertFalse(run.outputText.contains(key), run.outputText)
        let logs = try berthVerb(["logs", "postStart"])
        XCTAssertEqual(logs.outputText, "key=***\n")
        stop(run)
    }

    func test_remote_env_reaches_the_users_login_shells_and_container_env_is_said_not_to_apply() throws {
        try devcontainer("""
        {
          "remoteEnv": { "GREETING": "it's ${containerEnv:WHO}", "KEPT_AS_WRITTEN": "${localWorkspaceFolder}", "HOSTNAME": null },
          "containerEnv": { "ONLY_AT_CREATE": "1" },
        }
        """)
        let run = try start(["WHO": "berth"])
        XCTAssertTrue(waitFor("berth: postStart: ", in: run), run.outputText)
        XCTAssertTrue(run.outputText.contains("onCreate | containerEnv (ONLY_AT_CREATE) is not applied"), run.outputText)
        stop(run)
        let login = try root.asUser(["/bin/sh", "-c", ". \"$HOME/.profile\"; echo \"$GREETING|$KEPT_AS_WRITTEN|${HOSTNAME-unset}\""])
        XCTAssertEqual(login.outputText, "it's berth|${localWorkspaceFolder}|unset\n", login.errorText)
        XCTAssertEqual(root.status("/home/dev8/.config/berth/remote-env.sh")?.st_uid, 1000, "the user's own file")
    }

    /// The attack: the workspace user points devcontainer.json at a file
    /// only root may read. The hook task reads it as the user, so the error
    /// says it cannot read it and shows none of it.
    func test_a_devcontainer_json_linked_to_a_root_only_file_shows_nothing_of_it() throws {
        let secret = "root-only-\(Int.random(in: 100_000..<999_999))"
        try root.write("/etc/shadow-like", "{ \"postStartCommand\": \"echo \(secret)\" }\n", mode: 0o600)
        XCTAssertEqual(symlink("/etc/shadow-like", root.path + "/workspace/.devcontainer/devcontainer.json"), 0)
        let run = try start()
        XCTAssertTrue(waitFor("berth: postStart: ", in: run), run.outputText)
        stop(run)
        XCTAssertTrue(run.outputText.contains("/workspace/.devcontainer/devcontainer.json: cannot read: Permission denied; no hook runs"), run.outputText)
        XCTAssertFalse(run.outputText.contains(secret), "root's file reached the log: \(run.outputText)")
    }

    func test_with_berth_strict_a_failed_hook_stops_the_container_and_later_hooks_do_not_run() throws {
        try devcontainer(#"{ "onCreateCommand": "exit 4", "postStartCommand": "echo should-not-run" }"#)
        let run = try root.berth(["--", "/testkit", "print-signals", "15", "60"], environment: ["PATH": "/usr/bin:/bin", "BERTH_STRICT": "1"],
                                 oneStream: true)
        XCTAssertEqual(run.wait(timeout: 30), .exited(1), run.outputText)
        XCTAssertTrue(run.outputText.contains("berth: onCreate: failed: exited with status 4 after "), run.outputText)
        XCTAssertFalse(run.outputText.contains("should-not-run"), run.outputText)
    }

    /// The attack: the workspace user links `.devcontainer` to a directory
    /// only root can read, or to nowhere, to learn from whether hooks show
    /// up which root-only paths exist. berth never follows the link as
    /// root: both plan the same tasks, and neither runs anything.
    func test_whether_hooks_are_planned_never_tells_the_user_what_root_can_see_behind_a_link() throws {
        XCTAssertEqual(system("rm -rf '\(root.path)/workspace/.devcontainer' && mkdir -m 700 '\(root.path)/root-only'"), 0)
        try root.write("/root-only/devcontainer.json", "{ \"postStartCommand\": \"echo from-root-only\" }\n", mode: 0o600)
        var planned: [String] = []
        for target in ["/root-only", "/nowhere"] {
            XCTAssertEqual(system("ln -sfn \(target) '\(root.path)/workspace/.devcontainer'"), 0)
            let run = try start()
            XCTAssertTrue(waitFor("berth: postStart: ", in: run), "tasks planned with .devcontainer -> \(target): \(run.outputText)")
            stop(run)
            XCTAssertFalse(run.outputText.contains("from-root-only"), run.outputText)
            planned.append(run.outputText.split(separator: "\n").filter { $0.hasPrefix("berth: ") && $0.contains(": started (pid") }
                .map { String($0.split(separator: ":")[1]) }.joined(separator: ","))
        }
        XCTAssertEqual(planned[0], planned[1], "the same tasks whatever the link points to")
    }
}
