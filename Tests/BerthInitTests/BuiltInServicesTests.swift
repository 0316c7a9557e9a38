import Foundation
import Glibc
import TestSupport
import XCTest

/// code-server and the workspace supervisor as built-in services. Neither
/// is packaged for Debian, so each is a small script here: the code-server
/// one serves real HTTP (the test kit's server) on the port of the
/// bind-addr that provisioning wrote to its config.
final class BuiltInServicesTests: XCTestCase {
    let port = Int.random(in: 40_000..<50_000)

    func root(tools: [String] = []) throws -> ThrowawayRoot {
        let root = try ThrowawayRoot(tools: ["/usr/lib/x86_64-linux-gnu/libargon2.so.1"] + tools)
        XCTAssertEqual(system("mkdir -p '\(root.path)/usr/bin'"), 0)
        try root.write("/usr/bin/code-server", """
        #!/bin/sh
        # Stands in for code-server: HTTP on the port of bind-addr in --config.
        port=8080
        while read -r key value; do
          case "$key" in bind-addr:) port=${value##*:} ;; esac
        done < "$2"
        echo "workspace=$3 home=$HOME"
        exec /testkit http-server "$port" 60

        """, mode: 0o755)
        // Prints what it was given and its privileges, then waits.
        try root.write("/usr/bin/workspace-supervisor", """
        #!/bin/sh
        read -r key < "$SUPERVISOR_AGENT_API_KEY_FILE"
        read -r aws < "$AWS_SECRET_ACCESS_KEY_FILE"
        echo "mode=$SUPERVISOR_MODE direct=$SUPERVISOR_AGENT_API_KEY$AWS_SECRET_ACCESS_KEY key=$key aws=$aws"
        while read -r field value rest; do
          case "$field" in CapAmb:|CapEff:|NoNewPrivs:) echo "$field $value" ;; esac
        done < /proc/self/status
        /testkit ids
        exec /testkit print-signals 15 60

        """, mode: 0o755)
        return root
    }

    func test_code_server_runs_as_the_workspace_user_and_is_ready_before_the_command() throws {
        let root = try root()
        // berth's log and the command's output in one stream: its order is
        // the order things happened in.
        let run = try root.berth(["--", "/testkit", "ids"], environment: [
            "PATH": "/usr/bin:/bin", "CODE_SERVER_BIND": "127.0.0.1:\(port)", "CODE_SERVER_PASSWORD": "pw", "SUPERVISOR_ENABLED": "0",
        ], oneStream: true)
        XCTAssertEqual(run.wait(timeout: 60), .exited(0), run.outputText)
        let output = run.outputText
        XCTAssertTrue(output.contains("code-server | listening on \(port)\n"), output)
        XCTAssertTrue(output.contains("code-server | workspace=/workspace home=/home/dev8\n"), output)
        let lines = output.split(separator: "\n").map(String.init)
        let ready: Int = try XCTUnwrap(lines.firstIndex { $0.contains("berth: code-server: ready") }, output)
        // The command: as the workspace user, its first output after berth said code-server was ready.
        let command: Int = try XCTUnwrap(lines.firstIndex(of: "uid=1000 gid=1000 groups=1000"), output)
        XCTAssertLessThan(ready, command, "the command ran before code-server was ready: \(lines)")
        let stopped: Int = try XCTUnwrap(lines.firstIndex { $0.contains("berth: code-server: stopped") }, output)
        XCTAssertGreaterThan(stopped, command, "code-server stopped once the command had exited: \(lines)")
    }

    func test_the_workspace_supervisor_runs_as_its_own_user_with_its_credentials_as_private_files() throws {
        let root = try root()
        let run = try root.berth(["--", "/bin/sh", "-c", "echo \"command key=$SUPERVISOR_AGENT_API_KEY$SUPERVISOR_AGENT_API_KEY_FILE aws=$AWS_SECRET_ACCESS_KEY\"; exec /testkit print-signals 15 60"], environment: [
            "PATH": "/usr/bin:/bin", "CODE_SERVER_ENABLED": "0", "SUPERVISOR_MODE": "strict",
            "SUPERVISOR_AGENT_API_KEY": "agent-key", "AWS_SECRET_ACCESS_KEY": "aws-secret",
        ])
        // The supervisor's lines and the command's interleave in no fixed
        // order: read until both have been seen (bounded in count and time).
        var lines: [String] = []
        var own: [String] { lines.filter { $0.hasPrefix("workspace-supervisor | ") }.map { String($0.dropFirst("workspace-supervisor | ".count)) } }
        while lines.count < 40, own.count < 5 || !lines.contains(where: { $0.hasPrefix("command ") }),
              let line = run.readLine(timeout: 20) { lines.append(line) }
        // Credentials arrive as files (the variables themselves are empty),
        // under a uid that is neither root nor the workspace user, with
        // no_new_privs; CAP_DAC_READ_SEARCH (bit 2) only, and only when
        // berth holds it (it does here: the test runs as full root).
        XCTAssertEqual(own, ["mode=strict direct= key=agent-key aws=aws-secret", "CapEff: 0000000000000004", "CapAmb: 0000000000000004",
                             "NoNewPrivs: 1", "uid=999 gid=999 groups=999"], run.errorText)
        XCTAssertTrue(lines.contains("command key= aws="), "\(lines)")
        var info = stat()
        XCTAssertEqual(stat(root.path + "/run/berth/supervisor/supervisor_agent_api_key", &info), 0)
        XCTAssertEqual(info.st_mode & 0o7777, 0o400)
        XCTAssertEqual(info.st_uid, 999)
        XCTAssertEqual(stat(root.path + "/run/berth/supervisor", &info), 0)
        XCTAssertEqual(info.st_mode & 0o7777, 0o700)
        if let berth = childOf(run.pid) { kill(berth, SIGTERM) }
        XCTAssertTrue(run.wait(timeout: 15).isTermination, run.errorText)
    }

    /// The command runs as the workspace user: it plays the attacker,
    /// trying every way to the supervisor's credentials and process.
    func test_the_workspace_user_cannot_read_signal_or_find_the_supervisors_credentials() throws {
        // bash for `read -d ''` (NUL-separated /proc files).
        let root = try root(tools: ["/bin/bash"])
        // The secrets' text is assembled at run time: the attack's own
        // argv must not count as a find.
        let attack = """
        a=agent; a="$a-key"; b=aws; b="$b-secret"
        hits=0
        for d in /proc/[0-9]*; do
          for f in environ cmdline; do
            while IFS= read -r -d '' entry 2>/dev/null || [ -n "$entry" ]; do
              case "$entry" in *"$a"*|*"$b"*) hits=$((hits+1)) ;; esac
              entry=
            done < "$d/$f"
          done 2>/dev/null
          read -r name < "$d/comm" 2>/dev/null
          while read -r field value rest; do [ "$field" = Uid: ] && uid=$value; done < "$d/status" 2>/dev/null
          [ "$uid" = 999 ] && target=${d#/proc/}
        done
        echo "scanned environ hits=$hits"
        if read -r stolen < /run/berth/supervisor/supervisor_agent_api_key 2>/dev/null; then echo "read key=$stolen"; else echo "read refused"; fi
        if [ -n "$target" ] && kill -TERM "$target" 2>/dev/null; then echo "signal delivered"; else echo "signal refused target=${target:-none}"; fi
        /testkit ids
        """
        let run = try root.berth(["--", "/bin/bash", "-c", attack], environment: [
            "PATH": "/usr/bin:/bin", "CODE_SERVER_ENABLED": "0",
            "SUPERVISOR_AGENT_API_KEY": "agent-key", "AWS_SECRET_ACCESS_KEY": "aws-secret",
        ])
        XCTAssertEqual(run.wait(timeout: 60), .exited(0), run.errorText)
        let output = run.outputText
        XCTAssertTrue(output.contains("scanned environ hits=0\n"), output)
        XCTAssertTrue(output.contains("read refused\n"), output)
        XCTAssertTrue(output.contains("signal refused target="), output)
        XCTAssertFalse(output.contains("target=none"), "the attack must have found the supervisor to try: \(output)")
        XCTAssertTrue(output.contains("uid=1000 gid=1000 groups=1000\n"), "the attack ran as the workspace user: \(output)")
    }

    func test_without_a_user_of_its_own_the_workspace_supervisor_is_not_started_and_berth_says_why() throws {
        let root = try root()
        try root.write("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\ndev8:x:1000:1000:dev8:/home/dev8:/bin/sh\n")
        let run = try root.berth(["--", "/testkit", "ids"], environment: [
            "PATH": "/usr/bin:/bin", "CODE_SERVER_ENABLED": "0", "SUPERVISOR_AGENT_API_KEY": "agent-key",
        ])
        XCTAssertEqual(run.wait(timeout: 60), .exited(0), run.errorText)
        XCTAssertTrue(run.errorText.contains("berth: workspace-supervisor: not started: SUPERVISOR_USER=berth-supervisor: no such user in /etc/passwd; the workspace supervisor holds the platform's credentials (SUPERVISOR_AGENT_API_KEY)"), run.errorText)
        XCTAssertFalse(run.outputText.contains("workspace-supervisor |"), run.outputText)
        XCTAssertTrue(run.outputText.contains("uid=1000 gid=1000 groups=1000\n"), run.outputText)
    }

    func test_an_absent_workspace_supervisor_is_said_once_and_berth_carries_on() throws {
        let root = try root()
        XCTAssertEqual(unlink(root.path + "/usr/bin/workspace-supervisor"), 0)
        let environment = ["PATH": "/usr/bin:/bin", "CODE_SERVER_BIND": "127.0.0.1:\(port)", "CODE_SERVER_PASSWORD": "pw"]
        let run = try root.berth(["--", "/testkit", "ids"], environment: environment)
        XCTAssertEqual(run.wait(timeout: 60), .exited(0), run.errorText)
        let notice = "berth: workspace-supervisor is not installed (not on PATH): not started; SUPERVISOR_ENABLED=0 says it is not wanted\n"
        XCTAssertEqual(run.errorText.components(separatedBy: notice).count - 1, 1, run.errorText)
        XCTAssertTrue(run.errorText.contains("berth: code-server: ready"), run.errorText)

        var quiet = environment
        quiet["SUPERVISOR_ENABLED"] = "0"
        let off = try root.berth(["--", "/testkit", "ids"], environment: quiet)
        XCTAssertEqual(off.wait(timeout: 60), .exited(0), off.errorText)
        XCTAssertFalse(off.errorText.contains("workspace-supervisor"), off.errorText)

        // Nothing supervised at all: a plain init says nothing about it.
        XCTAssertEqual(unlink(root.path + "/usr/bin/code-server"), 0)
        let plain = try root.berth(["--", "/testkit", "ids"], environment: ["PATH": "/usr/bin:/bin"])
        XCTAssertEqual(plain.wait(timeout: 60), .exited(0), plain.errorText)
        XCTAssertFalse(plain.errorText.contains("not installed"), plain.errorText)
    }

    func test_a_bad_setting_fails_its_plugins_service_in_one_line_and_berth_runs_the_command() throws {
        let root = try root()
        let run = try root.berth(["--", "/testkit", "ids"], environment: [
            "PATH": "/usr/bin:/bin", "CODE_SERVER_BIND": "127.0.0.1:\(port)\nauth: none", "CODE_SERVER_PASSWORD": "pw", "SUPERVISOR_ENABLED": "0",
        ])
        XCTAssertEqual(run.wait(timeout: 60), .exited(0), run.errorText)
        let lines = run.errorText.split(separator: "\n")
        let failed = lines.firstIndex { $0 == "berth: code-server: failed: CODE_SERVER_BIND='127.0.0.1:\(port)\\nauth: none': expected HOST:PORT, like 0.0.0.0:8080" }
        XCTAssertNotNil(failed, "the service fails naming the variable, its newline shown escaped: \(run.errorText)")
        XCTAssertFalse(lines.contains { $0.hasPrefix("auth: none") }, "the value forged no line of its own: \(run.errorText)")
        XCTAssertFalse(run.errorText.contains("code-server: started"), run.errorText)
        XCTAssertTrue(run.outputText.contains("uid=1000 gid=1000 "), "the command ran: \(run.outputText)")
    }

    func test_code_server_answers_http_while_berth_runs_and_can_be_switched_off() throws {
        let root = try root()
        let run = try root.berth([], environment: ["PATH": "/usr/bin:/bin", "CODE_SERVER_BIND": "127.0.0.1:\(port)", "CODE_SERVER_PASSWORD": "pw",
                                                   "SUPERVISOR_ENABLED": "0"])
        let deadline = now() + 30
        while !run.errorText.contains("code-server: ready"), now() < deadline { _ = run.readLine(timeout: 0.1) }
        let fetch = try Subprocess(["/usr/bin/python3", "-c", "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:\(port)/').read().decode())"],
                                   environment: ["PATH": "/usr/bin:/bin"])
        XCTAssertEqual(fetch.wait(), .exited(0), fetch.errorText)
        XCTAssertEqual(fetch.outputText, "berth-testkit\n")
        XCTAssertFalse(run.errorText.contains("workspace-supervisor"), "SUPERVISOR_ENABLED=0")
        if let berth = childOf(run.pid) { kill(berth, SIGTERM) }
        XCTAssertEqual(run.wait(timeout: 15), .exited(0), run.errorText)

        let off = try root.berth(["--", "/testkit", "ids"], environment: ["PATH": "/usr/bin:/bin", "CODE_SERVER_ENABLED": "0", "SUPERVISOR_ENABLED": "0",
                                                                        "CODE_SERVER_PASSWORD": "pw"])
        XCTAssertEqual(off.wait(timeout: 30), .exited(0))
        XCTAssertFalse(off.errorText.contains("code-server: started"), off.errorText)
        // No services: the command still runs as the workspace user (one rule).
        XCTAssertTrue(off.outputText.hasPrefix("uid=1000 gid=1000 "), "no services, the same rule for the command: \(off.outputText)")
        let asRoot = try root.berth(["--", "/testkit", "ids"], environment: ["PATH": "/usr/bin:/bin", "CODE_SERVER_ENABLED": "0", "SUPERVISOR_ENABLED": "0",
                                                                         "BERTH_COMMAND_USER": "root"])
        XCTAssertEqual(asRoot.wait(timeout: 30), .exited(0))
        XCTAssertTrue(asRoot.outputText.hasPrefix("uid=0 gid=0 "), "BERTH_COMMAND_USER=root keeps root: \(asRoot.outputText)")
    }
}

/// Secrets provisioning consumed reach a service only when it asks for them.
final class ServiceSecretsTests: XCTestCase {
    /// Each service prints its environment and is ready once it has (the
    /// command waits for that), then stays up until the container stops.
    func test_a_secret_reaches_only_the_service_that_opts_in() throws {
        let root = try ThrowawayRoot()
        XCTAssertEqual(system("mkdir -p '\(root.path)/etc/berth/services.d'"), 0)
        // The readiness probes run with their service's environment: the one
        // that opted in sees the key, the other must not (or never is ready).
        for (name, optIn, probe) in [("asks", "pass_secrets = [\"OPENAI_API_KEY\"]\n", "-n"), ("plain", "", "-z")] {
            try root.write("/etc/berth/services.d/\(name).toml", """
            command = ["/bin/sh", "-c", "/testkit env; : > /tmp/\(name)-done; exec /testkit print-signals 15 30"]
            \(optIn)[readiness]
            command = ["/bin/sh", "-c", "test -f /tmp/\(name)-done && test \(probe) \\"$OPENAI_API_KEY\\""]
            timeout = 10
            """)
        }
        let run = try root.berth(["--", "/bin/sh", "-c", "echo command-sees=${OPENAI_API_KEY:-nothing}"],
                                 environment: ["PATH": "/usr/bin:/bin", "OPENAI_API_KEY": "sk-secret-1"])
        XCTAssertEqual(run.wait(timeout: 30), .exited(0), run.errorText)
        XCTAssertTrue(run.outputText.contains("asks | OPENAI_API_KEY=sk-secret-1\n"), run.outputText)
        XCTAssertFalse(run.outputText.contains("plain | OPENAI_API_KEY"), run.outputText)
        XCTAssertTrue(run.outputText.contains("command-sees=nothing\n"), run.outputText)
    }
}

/// The control socket as the workspace user reaches it from an SSH session:
/// group-readable for that user's group only.
final class WorkspaceUserControlTests: XCTestCase {
    func test_the_workspace_user_can_ask_for_status_and_health() throws {
        let root = try ThrowawayRoot()
        XCTAssertEqual(system("mkdir -p '\(root.path)/etc/berth/services.d'"), 0)
        try root.write("/etc/berth/services.d/idle.toml", "command = [\"/testkit\", \"print-signals\", \"15\", \"60\"]\n")
        let run = try root.berth([], environment: ["PATH": "/usr/bin:/bin"])
        defer {
            if let berth = childOf(run.pid) { kill(berth, SIGTERM) }
            XCTAssertEqual(run.wait(timeout: 15), .exited(0), run.errorText)
        }
        let deadline = now() + 20
        while !run.errorText.contains("berth: idle: started"), now() < deadline { _ = run.readLine(timeout: 0.1) }
        var info = stat()
        XCTAssertEqual(stat(root.path + "/run/berth/control.sock", &info), 0)
        XCTAssertEqual(info.st_mode & 0o777, 0o660)
        XCTAssertEqual(info.st_gid, 1000, "the workspace user's group")
        let status = try Subprocess(["/usr/sbin/chroot", "--userspec=1000:1000", root.path, "/berth", "status"], environment: ["PATH": "/usr/bin:/bin"])
        XCTAssertEqual(status.wait(timeout: 10), .exited(0), status.errorText)
        XCTAssertTrue(status.outputText.contains("idle"), status.outputText)
        let health = try Subprocess(["/usr/sbin/chroot", "--userspec=1000:1000", root.path, "/berth", "health"], environment: ["PATH": "/usr/bin:/bin"])
        XCTAssertEqual(health.wait(timeout: 10), .exited(0), health.outputText + health.errorText)
        let stranger = try Subprocess(["/usr/sbin/chroot", "--userspec=1001:1001", root.path, "/berth", "status"], environment: ["PATH": "/usr/bin:/bin"])
        XCTAssertEqual(stranger.wait(timeout: 10), .exited(1), "another user is refused")
    }
}
