import Foundation
import Glibc
import TestSupport
import XCTest

/// The workspace user as the attacker, in real containers of the base
/// image: every test runs its attack as dev8 (`docker exec -u dev8`, the
/// same powers as an SSH session, a dependency's install script or an AI
/// agent) and fails if the attack works. See SECURITY.md.
final class AttackTests: ImageTestCase {
    /// `script` run by bash as the workspace user inside `name`, with a
    /// session's environment: `docker exec` alone would hand it the
    /// container's `-e` variables, which no SSH or code-server session has.
    func asWorkspaceUser(_ name: String, _ script: String, timeout: Double = 60) throws -> Subprocess {
        try docker(["exec", "-u", "dev8", name] + sessionEnvironment + ["bash", "-c", script], timeout: timeout)
    }

    let sessionEnvironment = ["env", "-i", "HOME=/home/dev8", "USER=dev8", "LOGNAME=dev8", "SHELL=/bin/bash", "PATH=/usr/local/bin:/usr/bin:/bin"]

    func token(_ kind: String) -> String { "\(kind)-\(Int.random(in: 100_000_000..<999_999_999))" }

    func waitForProvisioning(_ name: String) throws {
        let deadline = now() + 30
        while now() < deadline, !(try docker(["logs", name]).errorText.contains("berth: provisioning:")) { usleep(100_000) }
    }

    func test_a_curlrc_in_the_workspace_users_home_does_not_make_a_health_probe_write_as_root() throws {
        let services = "/tmp/berth-attack-services-\(getpid())-\(Int.random(in: 0..<1_000_000))"
        XCTAssertEqual(mkdir(services, 0o755), 0)
        defer { _ = system("rm -rf '\(services)'") }
        // The README's own example probe, on a service that runs as dev8.
        XCTAssertTrue(FileManager.default.createFile(atPath: services + "/probed.toml", contents: Data("""
        command = ["/bin/sleep", "600"]
        user = "dev8"
        [health]
        command = ["curl", "-fs", "http://127.0.0.1:1/"]
        interval = 1
        timeout = 2
        retries = 3
        restart = false

        """.utf8)))
        let (name, _) = try start([:], flags: ["-v", "\(services):/etc/berth/services.d:ro"], port: nil)
        // curl reads $HOME/.curlrc; the probe runs with the service's HOME.
        let planted = try asWorkspaceUser(name, "printf 'trace-ascii = \"/etc/probe-wrote-this\"\\n' > ~/.curlrc && echo planted")
        XCTAssertEqual(planted.outputText, "planted\n", planted.errorText)
        // Unhealthy after 3 failed probes in a row (interval 1 s): each of
        // them, run as root, would have written the file.
        var healthy: Bool? = true
        let deadline = now() + 20
        while now() < deadline, healthy != false {
            usleep(500_000)
            let status = try exec(name, "berth status --json").outputText
            let services = (try? JSONSerialization.jsonObject(with: Data(status.utf8)) as? [[String: Any]]) ?? []
            healthy = services.first { $0["name"] as? String == "probed" }?["healthy"] as? Bool
        }
        XCTAssertEqual(healthy, false, "the probes ran and failed")
        XCTAssertEqual(try exec(name, "test -e /etc/probe-wrote-this; echo $?").outputText, "1\n", "a probe wrote into /etc as root")
    }

    func test_no_process_file_or_signal_the_workspace_user_can_reach_holds_a_platform_credential() throws {
        let credentials = [
            "SUPERVISOR_AGENT_API_KEY": token("agentkey"),
            "AWS_SECRET_ACCESS_KEY": token("awssecret"),
            "SUPERVISOR_BACKUP_AZURE_SAS_URL": "https://account.blob.core.windows.net/backups?sv=2024&sig=\(token("sassig"))",
            "SUPERVISOR_HTTP_TOKEN": token("httptoken"),
        ]
        var environment = credentials
        environment["SSH_PUBLIC_KEY"] = publicKey
        environment["AWS_ACCESS_KEY_ID"] = "AKIAEXAMPLE"
        let (name, port) = try start(environment)
        XCTAssertNotNil(try waitForLogin(port, since: now()))
        let status = try exec(name, "berth status").outputText
        let pid = try XCTUnwrap(try servicePIDs(name)["workspace-supervisor"], status)
        XCTAssertEqual(try exec(name, "stat -c %U /proc/\(pid)").outputText, "berth-supervisor\n")

        // The needles travel base64-encoded (the attack's own argv must not
        // be a find); a canary, exported into the attack's environment and
        // written to a file, proves each scan ran and could find.
        let canary = token("canary")
        let credentialList = Data(credentials.values.joined(separator: "\n").utf8).base64EncodedString()
        let canaryEncoded = Data(canary.utf8).base64EncodedString()
        let attack = """
        echo \(credentialList) | base64 -d > /tmp/needles; echo >> /tmp/needles
        export CANARY=$(echo \(canaryEncoded) | base64 -d); printf '%s' "$CANARY" > /tmp/canary
        dump() { for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do tr '\\0' '\\n' < "$f" 2>/dev/null; done; }
        echo "proc credential hits: $(dump | grep -cF -f /tmp/needles)"
        echo "proc canary hits: $(dump | grep -cF "$CANARY")"
        grep -rlsF -f /tmp/needles -e "$CANARY" / --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev | sort
        cat /run/berth/supervisor/* >/dev/null 2>&1 && echo "credential files: read" || echo "credential files: refused"
        kill -0 \(pid) 2>/dev/null && echo "supervisor: signalled" || echo "supervisor: refused"
        (echo 0 > /proc/\(pid)/oom_score_adj) 2>/dev/null && echo "oom: changed" || echo "oom: refused"
        """
        let run = try asWorkspaceUser(name, attack, timeout: 120)
        let output = run.outputText
        XCTAssertTrue(output.contains("proc credential hits: 0\n"), output)
        XCTAssertFalse(output.contains("proc canary hits: 0\n"), "the /proc scan must find the canary: \(output)")
        XCTAssertTrue(output.contains("proc canary hits: "), output)
        let files = output.split(separator: "\n").filter { $0.hasPrefix("/") }
        XCTAssertEqual(files, ["/tmp/canary", "/tmp/needles"], "files the workspace user can read that hold a credential (the canary and the needles are the attack's)")
        XCTAssertTrue(output.contains("credential files: refused\n"), output)
        XCTAssertTrue(output.contains("supervisor: refused\n"), output)
        XCTAssertTrue(output.contains("oom: refused\n"), output)
        // And the supervisor really got them (through its files).
        let given = try exec(name, "cat /run/berth/supervisor/supervisor_agent_api_key").outputText
        XCTAssertEqual(given, credentials["SUPERVISOR_AGENT_API_KEY"])
        let logs = try docker(["logs", name])
        for secret in credentials.values { XCTAssertFalse((logs.outputText + logs.errorText).contains(secret), "docker logs") }
    }

    func test_a_snapshot_the_workspace_user_crafted_never_gives_root_a_setuid_shell() throws {
        let (name, _) = try start(["SUPERVISOR_BACKUP_MOUNT_PATH": "/backups"], port: nil)
        // The store is the supervisor's: the workspace user cannot plant a repository in it.
        XCTAssertEqual(try asWorkspaceUser(name, "mkdir /backups/restic 2>/dev/null && echo planted || echo refused").outputText, "refused\n")
        // So it makes one where it can write, with restic itself: a
        // snapshot whose bash is setuid and setgid, and the password beside it.
        let craft = """
        set -e
        mkdir -p ~/craft && cp /bin/bash ~/craft/rootshell && chmod 6755 ~/craft/rootshell
        mkdir -m 700 ~/store && printf 'pw\\n' > ~/store/restic-password && chmod 400 ~/store/restic-password
        export RESTIC_PASSWORD_FILE=~/store/restic-password
        restic --repo ~/store/restic --no-cache init -q
        cd ~/craft && restic --repo ~/store/restic --no-cache backup -q --tag berth --host workspace .
        restic --repo ~/store/restic --no-cache ls -l latest
        """
        let crafted = try asWorkspaceUser(name, craft)
        XCTAssertEqual(crafted.status, .exited(0), crafted.errorText)
        // restic shows setuid and setgid as Go does: u and g before the bits.
        XCTAssertTrue(crafted.outputText.contains("ugrwxr-xr-x  1000  1000"), crafted.outputText)
        XCTAssertEqual(try exec(name, "touch /tmp/before-restore && echo ok").outputText, "ok\n")

        // The operator restores it the documented way, pointed at the user's store.
        let fromUserStore = try docker(["exec", "-e", "SUPERVISOR_BACKUP_MOUNT_PATH=/home/dev8/store", name,
                                        "workspace-supervisor", "restore", "latest", "/tmp/restored-1"])
        XCTAssertNotEqual(fromUserStore.status, .exited(0), "a store the workspace user owns is not trusted")
        XCTAssertTrue(fromUserStore.errorText.contains("owned by uid 1000"), fromUserStore.errorText)
        XCTAssertEqual(try exec(name, "test -e /tmp/restored-1/rootshell; echo $?").outputText, "1\n")

        // Even inside the supervisor's own store (a tampered copy), the
        // stream is unpacked by dev8: no root owner, no setuid or setgid.
        let moved = try exec(name, "cp -a /home/dev8/store/restic /home/dev8/store/restic-password /backups/ && chown -R berth-supervisor:berth-supervisor /backups && echo ok")
        XCTAssertEqual(moved.outputText, "ok\n", moved.errorText)
        let fromStore = try docker(["exec", "-e", "SUPERVISOR_BACKUP_MOUNT_PATH=/backups", name, "workspace-supervisor", "restore", "latest", "/tmp/restored-2"])
        XCTAssertEqual(fromStore.status, .exited(0), fromStore.errorText)
        XCTAssertEqual(try exec(name, "stat -c '%U %A' /tmp/restored-2/rootshell").outputText, "dev8 -rwxr-xr-x\n")
        let privileged = try exec(name, "find / -xdev -newer /tmp/before-restore -perm /6000 -print")
        XCTAssertEqual(privileged.status, .exited(0), privileged.errorText)
        XCTAssertEqual(privileged.outputText, "", "setuid or setgid files made by the restore")
    }

    func test_a_symlink_swap_race_in_the_home_never_lets_provisioning_touch_etc() throws {
        let environment = ["SSH_PUBLIC_KEY": publicKey, "OPENAI_API_KEY": token("sk"), "CODE_SERVER_PASSWORD": token("pw")]
        let (name, port) = try start(environment)
        XCTAssertNotNil(try waitForLogin(port, since: now()))
        // Owners and modes of everything in /etc, and a mark to find what changes.
        let listing = "find /etc -xdev -printf '%p %U %G %m\\n' | sort"
        XCTAssertEqual(try exec(name, "touch /tmp/before-race && \(listing) > /tmp/etc-before && echo ok").outputText, "ok\n")
        // The attacker swaps each directory root writes into for a symlink
        // to /etc and back, for 6 s (bounded by count too), while root
        // provisions again and again.
        let race = """
        end=$((SECONDS + 6)); n=0
        while [ $SECONDS -lt $end ] && [ $n -lt 200000 ]; do
          for d in .config .ssh .codex .gemini .local/share/code-server/User .config/code-server .config/gh .config/berth; do
            rm -rf ~/$d 2>/dev/null; ln -sfn /etc ~/$d 2>/dev/null
            rm -f ~/$d 2>/dev/null; mkdir -p ~/$d 2>/dev/null
          done
          n=$((n + 1))
        done
        echo "swaps: $n"
        """
        let attacker = try Subprocess(["docker", "exec", "-u", "dev8", name] + sessionEnvironment + ["bash", "-c", race],
                                      environment: ["PATH": "/usr/local/bin:/usr/bin:/bin"])
        var provisions = 0
        let end = now() + 6
        while now() < end, provisions < 100 {
            let variables = environment.flatMap { ["-e", "\($0.key)=\($0.value)"] }
            try docker(["exec"] + variables + [name, "berth", "provision"], timeout: 30)
            provisions += 1
        }
        attacker.wait(timeout: 30)
        XCTAssertTrue(attacker.outputText.hasPrefix("swaps: "), attacker.errorText)
        print("symlink race: \(attacker.outputText.trimmingCharacters(in: .newlines)), \(provisions) provisions")
        XCTAssertGreaterThan(provisions, 2)
        let after = try exec(name, "\(listing) > /tmp/etc-after && diff /tmp/etc-before /tmp/etc-after && echo same")
        XCTAssertEqual(after.outputText, "same\n", "provisioning created, chowned or chmod'ed something in /etc")
        // What provisioning itself keeps in /etc may be rewritten; nothing else.
        let rewritten = try exec(name, "find /etc -xdev -newer /tmp/before-race -not -type d -not -path '/etc/ssh/sshd_config.d/*' -print")
        XCTAssertEqual(rewritten.status, .exited(0))
        XCTAssertEqual(rewritten.outputText, "", "files in /etc rewritten during the race")
        let strays = try exec(name, "find / -xdev -user dev8 -not -path '/home/dev8*' -not -path '/workspace*' -not -path '/tmp*' -not -path '/proc*' -print")
        XCTAssertEqual(strays.status, .exited(0))
        XCTAssertEqual(strays.outputText, "", "files owned by dev8 outside their home")
    }

    func test_a_newline_in_a_setting_cannot_add_lines_to_a_config_file() throws {
        let (name, _) = try start([
            "SSH_PUBLIC_KEY": publicKey,
            "SSH_PORT": "2222\nPermitRootLogin yes",
            "CODE_SERVER_BIND": "0.0.0.0:8080\nauth: none",
            "OPENAI_API_KEY": "sk-test\nexport INJECTED=1",
            "GITHUB_TOKEN": "ghp_0123456789abcdef0123456789abcdef0123",
            "GIT_USER_NAME": "dev\n[core]\n\tsshCommand = touch /tmp/injected",
        ], port: nil)
        try waitForProvisioning(name)
        let steps = try provisioned(name)
        for (step, variable) in [("sshd", "SSH_PORT"), ("code-server", "CODE_SERVER_BIND"), ("ai-cli", "OPENAI_API_KEY"), ("github-auth", "GIT_USER_NAME")] {
            XCTAssertEqual(steps[step]?.status, "failed", step)
            XCTAssertTrue(steps[step]?.text.contains(variable) ?? false, "\(step) names \(variable): \(steps[step]?.text ?? "")")
        }
        // A file the failed steps never wrote may be missing; one that is
        // there must be read, and the scan must reach its end.
        let read = try exec(name, """
            for f in /etc/ssh/sshd_config.d/*.conf /home/dev8/.config/code-server/config.yaml /home/dev8/.config/berth/ai-cli.env /home/dev8/.gitconfig; do
              [ -e "$f" ] || continue; cat "$f" || echo "unreadable: $f"
            done; echo end-of-scan
            """)
        XCTAssertEqual(read.status, .exited(0), read.errorText)
        XCTAssertTrue(read.outputText.hasSuffix("end-of-scan\n"), read.outputText)
        XCTAssertFalse(read.outputText.contains("unreadable: "), read.outputText + read.errorText)
        let written = read.outputText
        for injected in ["PermitRootLogin yes", "auth: none", "INJECTED", "sshCommand"] {
            XCTAssertFalse(written.contains(injected), "\(injected) reached a config file: \(written)")
        }
    }

    func test_credentials_inside_urls_never_reach_logs_or_files_under_the_run_directory() throws {
        let password = token("urlpass")
        let query = token("urlquery")
        let (name, _) = try start([
            "GITHUB_TOKEN_URL": "http://robot:\(password)@127.0.0.1:9/token?access=\(query)",
            "GITHUB_API_URL": "http://api:\(password)@127.0.0.1:9/api?key=\(query)",
            "BERTH_TOKEN_REFRESH_INTERVAL": "2",
        ], port: nil)
        try waitForProvisioning(name)
        sleep(3)
        let logs = try docker(["logs", name])
        let everything = logs.outputText + logs.errorText
        XCTAssertTrue(everything.contains("GITHUB_TOKEN_URL"), "the failure is reported: \(everything)")
        XCTAssertFalse(everything.contains(password), everything)
        XCTAssertFalse(everything.contains(query), everything)
        // Every file under the run directory, read as root; the listing
        // proves the scan saw them.
        // grep's status says what it found: 1 is no match, 2 an error; find
        // and cat each say whether they could read.
        let scan = try exec(name, """
            find /run/berth -type f > /tmp/run-files || echo "find failed: $?"; sort /tmp/run-files
            find /run/berth -type f -exec cat {} + > /tmp/run-contents || echo "cat failed: $?"
            grep -cF -e '\(password)' -e '\(query)' /tmp/run-contents; echo "grep status: $?"
            """)
        XCTAssertEqual(scan.status, .exited(0), scan.errorText)
        XCTAssertFalse(scan.outputText.contains("failed: "), scan.outputText + scan.errorText)
        XCTAssertTrue(scan.outputText.contains("/run/berth/provision.json\n"), scan.outputText)
        XCTAssertTrue(scan.outputText.contains("/run/berth/token-refresh.json\n"), scan.outputText)
        XCTAssertTrue(scan.outputText.hasSuffix("\n0\ngrep status: 1\n"), "no match (grep exit 1), not an error (2): \(scan.outputText)")
        let health = try exec(name, "berth health").outputText
        XCTAssertFalse(health.contains(password) || health.contains(query), health)
    }

    func test_a_workspace_user_service_flooding_output_and_sd_notify_never_delays_signal_forwarding() throws {
        let directory = "/tmp/berth-attack-flood-\(getpid())-\(Int.random(in: 0..<1_000_000))"
        XCTAssertEqual(mkdir(directory, 0o755), 0)
        defer { _ = system("rm -rf '\(directory)'") }
        XCTAssertEqual(mkdir(directory + "/services", 0o755), 0)
        XCTAssertEqual(mkdir(directory + "/out", 0o755), 0)
        XCTAssertEqual(chmod(directory + "/out", 0o777), 0, "the command, as dev8, writes its clock there")
        // The test kit, built static: the image has glibc but not Swift's runtime.
        let source = String(#filePath.dropLast("ImageTests/AttackTests.swift".count)) + "TestKit/main.c"
        let compile = try Subprocess(["gcc", "-O2", "-static", "-o", directory + "/testkit", source], environment: ["PATH": "/usr/bin:/bin"])
        XCTAssertEqual(compile.wait(timeout: 60), .exited(0), compile.errorText)
        // The workspace user's own code floods its output (100-byte lines)
        // and its notify socket (4 KB STATUS= datagrams, each a line berth
        // logs) for 30 s: longer than the test needs, so berth has to stop it.
        XCTAssertTrue(FileManager.default.createFile(atPath: directory + "/services/flooder.toml", contents: Data("""
        command = ["/opt/berth-testkit", "notify-flood", "30"]
        user = "dev8"
        required = false
        restart = "never"
        [readiness]
        notify = true

        """.utf8)))
        // Restarts every 50 ms: several lines of berth's own log each time.
        XCTAssertTrue(FileManager.default.createFile(atPath: directory + "/services/restarter.toml", contents: Data("""
        command = ["/bin/sh", "-c", "exit 1"]
        backoff_base = 0.05
        backoff_cap = 0.05
        crash_limit = 1000
        required = false

        """.utf8)))
        let name = uniqueName("flood")
        let run = try docker(["run", "-d", "--name", name, "-v", "\(directory)/services:/etc/berth/services.d:ro",
                              "-v", "\(directory)/testkit:/opt/berth-testkit:ro", "-v", "\(directory)/out:/out", Self.image,
                              "sh", "-c", "exec /opt/berth-testkit signal-clock 20 > /out/clock"])
        XCTAssertEqual(run.status, .exited(0), run.errorText)
        func received() -> [String] { (readText(directory + "/out/clock") ?? "").split(separator: "\n").map(String.init) }
        let flooding = try eventually(20) {
            let status = try exec(name, "berth status --json").outputText
            let services = (try? JSONSerialization.jsonObject(with: Data(status.utf8)) as? [[String: Any]]) ?? []
            return services.first { $0["name"] as? String == "flooder" }?["ready"] as? Bool == true
        }
        XCTAssertTrue(flooding, "the flooder sent READY=1")
        XCTAssertTrue(eventually(10) { received().first?.hasPrefix("ready") == true }, "the command started")
        usleep(1_000_000)  // a second of flood first: berth's output backlog fills and it drops lines

        // Root (only root may signal PID 1) sends 20 SIGUSR1, 50 ms apart;
        // sender and command read CLOCK_MONOTONIC in the same container.
        // Its exit status is not asked: the 20th signal ends the container,
        // and berth's last sweep may catch the sender on its way out.
        let sending = now()
        let sender = try docker(["exec", name, "/opt/berth-testkit", "signal-sender", "1", "20", "50"], timeout: 30)
        let sent = sender.outputText.split(separator: "\n").compactMap { UInt64($0) }
        XCTAssertEqual(sent.count, 20, sender.outputText + sender.errorText)
        _ = eventually(5) { received().count >= 21 }
        let arrivals = received().dropFirst().compactMap { UInt64($0) }
        XCTAssertEqual(arrivals.count, 20, "every signal was forwarded: \(received())")
        let delays = zip(sent, arrivals).map { Double(Int64(bitPattern: $1 &- $0)) / 1e6 }
        let sorted = delays.sorted()
        if !sorted.isEmpty {
            print(String(format: "signal forwarding under flood: max %.2f ms, median %.2f ms", sorted.last!, (sorted[(sorted.count - 1) / 2] + sorted[sorted.count / 2]) / 2))
        }
        XCTAssertLessThan(sorted.last ?? .infinity, 100, "each forwarded within 100 ms (ms: \(delays))")
        XCTAssertGreaterThanOrEqual(sorted.first ?? -1, 0, "no signal arrived before it was sent (ms: \(delays))")

        // The command exits 0 after its 20 signals: berth stops the services
        // (the flooder still flooding) and exits with the command's status,
        // within its shutdown timeout (8 s; measured here from before the
        // first signal, so it holds the ~1 s of sending too).
        let waited = try docker(["wait", name], timeout: 20)
        let shutdown = now() - sending
        print(String(format: "container exited %.2f s after the first signal was sent", shutdown))
        XCTAssertEqual(waited.outputText, "0\n", waited.errorText)
        XCTAssertLessThan(shutdown, 8)

        // The flood happened, and lasted until berth stopped it.
        let logs = try Subprocess(["/bin/sh", "-c", "docker logs \(name) 2>&1 | awk '/^flooder [|] flood-line / { l++; next } /^berth: flooder: flood s/ { s++; next } { print } END { print l + 0, s + 0 }'"],
                                   environment: ["PATH": "/usr/local/bin:/usr/bin:/bin"])
        XCTAssertEqual(logs.wait(timeout: 120), .exited(0), logs.errorText)
        let rest = logs.outputText.split(separator: "\n").map(String.init)
        let counts = (rest.last ?? "").split(separator: " ").compactMap { Int($0) }
        XCTAssertEqual(counts.count, 2, String(logs.outputText.suffix(500)))
        let dropped = rest.first { $0.contains("log lines were dropped in all") } ?? "berth: no line dropped"
        print("flood in docker logs: \(counts.first ?? 0) output lines, \(counts.last ?? 0) STATUS= lines; \(dropped)")
        XCTAssertGreaterThan(counts.first ?? 0, 5_000, "the flooder's output reached berth")
        XCTAssertGreaterThan(counts.last ?? 0, 500, "the flooder's STATUS= datagrams reached berth")
        XCTAssertTrue(rest.contains("berth: flooder: stopped (killed by SIGTERM)"), "still flooding when berth stopped it: \(rest.suffix(20))")
        XCTAssertFalse(rest.contains { $0.contains("shutdown took longer than") }, "\(rest.suffix(20))")
    }
}
