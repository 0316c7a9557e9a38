import Foundation
import Glibc
import TestSupport
import XCTest

/// The base image in real containers (scripts/images builds berth/base:dev
/// with this build's berth), asserted from outside as a user would: docker,
/// ssh over a published loopback port, docker exec.
final class BaseImageTests: ImageTestCase {
    func test_a_container_provisions_sshd_takes_a_key_login_refuses_others_and_turns_healthy() throws {
        let started = now()
        let (name, port) = try start(["SSH_PUBLIC_KEY": publicKey])
        let logs = { (try? self.docker(["logs", name]).errorText) ?? "" }
        let ready = try XCTUnwrap(try waitForLogin(port, since: started), "no key login: \(logs())")
        print("time to ready (docker run -> ssh login): \(String(format: "%.2f", ready)) s")

        let steps = try provisioned(name)
        XCTAssertEqual(steps["ssh-keys"]?.status, "ok")
        XCTAssertEqual(steps["sshd"]?.status, "ok")
        XCTAssertEqual(try exec(name, "stat -c '%U %G %a' /home/dev8/.ssh/authorized_keys /home/dev8/.ssh").outputText, "dev8 dev8 600\ndev8 dev8 700\n")
        XCTAssertTrue(try exec(name, "cat /home/dev8/.ssh/authorized_keys").outputText.contains(publicKey))
        let settings = try exec(name, "sshd -T").outputText
        for line in ["port 2222", "permitrootlogin no", "passwordauthentication no", "kbdinteractiveauthentication no",
                     "pubkeyauthentication yes", "maxauthtries 3", "allowusers dev8", "x11forwarding no", "clientaliveinterval 60"] {
            XCTAssertTrue(settings.contains(line + "\n"), "sshd -T lacks '\(line)'")
        }
        XCTAssertEqual(try ssh(port, "id -un").outputText, "dev8\n")
        XCTAssertNotEqual(try ssh(port, "true", user: "root").status, .exited(0), "root login refused")
        let password = try ssh(port, "true", extra: ["-o", "PreferredAuthentications=password,keyboard-interactive", "-o", "PubkeyAuthentication=no"])
        XCTAssertNotEqual(password.status, .exited(0), "password login refused")

        XCTAssertEqual(try exec(name, "berth health").outputText, "healthy\n")
        XCTAssertEqual(try health(name, becomes: "healthy", within: 40), "healthy")

        let stopping = now()
        XCTAssertEqual(try docker(["stop", name]).status, .exited(0))
        let took = now() - stopping
        print("docker stop: \(String(format: "%.2f", took)) s")
        XCTAssertLessThan(took, 2)
        XCTAssertEqual(try docker(["inspect", "-f", "{{.State.ExitCode}}", name]).outputText, "0\n")
        XCTAssertTrue(try docker(["logs", name]).errorText.contains("berth: sshd: stopped"))
    }

    func test_host_keys_are_made_per_container_and_kept_across_a_restart() throws {
        XCTAssertEqual(try docker(["run", "--rm", "--entrypoint", "sh", Self.image, "-c", "entries=$(ls -A /etc/ssh) && printf '%s\\n' \"$entries\" | grep -c ssh_host_ || true"]).outputText, "0\n",
                       "no host key baked into the image (a failed ls prints nothing, not 0)")
        let first = try start(["SSH_PUBLIC_KEY": publicKey])
        let second = try start(["SSH_PUBLIC_KEY": publicKey])
        XCTAssertNotNil(try waitForLogin(first.port, since: now()))
        XCTAssertNotNil(try waitForLogin(second.port, since: now()))
        let key = "cat /etc/ssh/ssh_host_ed25519_key.pub"
        let firstKey = try exec(first.name, key).outputText
        XCTAssertFalse(firstKey.isEmpty)
        XCTAssertNotEqual(firstKey, try exec(second.name, key).outputText)

        let files = "cat /etc/ssh/ssh_host_ed25519_key.pub /home/dev8/.ssh/authorized_keys /etc/ssh/sshd_config.d/berth.conf"
        let before = try exec(first.name, files).outputText
        XCTAssertEqual(try docker(["restart", first.name]).status, .exited(0))
        XCTAssertNotNil(try waitForLogin(first.port, since: now()))
        XCTAssertEqual(try exec(first.name, files).outputText, before, "a restart changes nothing")
    }

    func test_a_killed_sshd_is_restarted_and_orphans_leave_no_zombies() throws {
        let (name, port) = try start(["SSH_PUBLIC_KEY": publicKey])
        XCTAssertNotNil(try waitForLogin(port, since: now()))
        let pid = try XCTUnwrap(try servicePIDs(name)["sshd"])
        XCTAssertEqual(try exec(name, "kill -9 \(pid)").status, .exited(0))
        XCTAssertNotNil(try waitForLogin(port, since: now()), "sshd came back")
        XCTAssertTrue(try exec(name, "berth status --json").outputText.contains("\"restarts\": 1"))

        // The test kit, built static: the container has glibc but not Swift's runtime.
        let source = String(#filePath.dropLast("ImageTests/BaseImageTests.swift".count)) + "TestKit/main.c"
        let kit = "\(keys)/testkit"
        let compile = try Subprocess(["gcc", "-O2", "-static", "-o", kit, source], environment: ["PATH": "/usr/bin:/bin"])
        XCTAssertEqual(compile.wait(timeout: 60), .exited(0), compile.errorText)
        XCTAssertEqual(try docker(["cp", kit, "\(name):/tmp/testkit"]).status, .exited(0))
        XCTAssertEqual(try exec(name, "/tmp/testkit orphans 1000").status, .exited(0))
        XCTAssertEqual(try exec(name, "/tmp/testkit zombies 10").outputText, "zombies 0\n")
    }

    func test_sudo_is_passwordless_with_berth_sudo_and_absent_without() throws {
        let with = try start(["SSH_PUBLIC_KEY": publicKey, "BERTH_SUDO": "1"])
        let without = try start(["SSH_PUBLIC_KEY": publicKey])
        XCTAssertNotNil(try waitForLogin(with.port, since: now()))
        XCTAssertNotNil(try waitForLogin(without.port, since: now()))
        XCTAssertEqual(try ssh(with.port, "sudo -n id -u").outputText, "0\n")
        let refused = try ssh(without.port, "sudo -n id -u")
        XCTAssertNotEqual(refused.status, .exited(0))
        XCTAssertTrue(refused.errorText.contains("password is required") || refused.errorText.contains("not allowed"), refused.errorText)
    }

    func test_the_workspace_supervisor_runs_as_its_own_user_answers_health_and_sees_an_ssh_login() throws {
        let (name, port) = try start(["SSH_PUBLIC_KEY": publicKey, "SUPERVISOR_MONITOR_INTERVAL": "200ms"])
        XCTAssertNotNil(try waitForLogin(port, since: now()))
        let services = try exec(name, "berth status").outputText
        let pid = try XCTUnwrap(try servicePIDs(name)["workspace-supervisor"], services)
        XCTAssertEqual(try exec(name, "stat -c %U /proc/\(pid)").outputText, "berth-supervisor\n")
        XCTAssertEqual(try exec(name, "curl -fsS http://127.0.0.1:9000/health").outputText, "{\"status\": \"ok\"}\n")

        // An SSH session held open: the supervisor counts it.
        let session = try Subprocess(["ssh", "-i", "\(keys)/id", "-p", String(port), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                                      "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "dev8@127.0.0.1", "sleep 5"], environment: ["PATH": "/usr/bin:/bin"])
        var activity: [String: Any] = [:]
        let deadline = now() + 4
        while now() < deadline {
            let status = try exec(name, "curl -fsS http://127.0.0.1:9000/status").outputText
            activity = (try? JSONSerialization.jsonObject(with: Data(status.utf8)) as? [String: Any])?["activity"] as? [String: Any] ?? [:]
            if activity["sshSessions"] as? Int ?? 0 >= 1 { break }
            usleep(200_000)
        }
        XCTAssertGreaterThanOrEqual(activity["sshSessions"] as? Int ?? 0, 1, "\(activity)")
        XCTAssertGreaterThanOrEqual(activity["activeSSHConnections"] as? Int ?? 0, 1, "\(activity)")
        XCTAssertNotNil(activity["lastSSHActivity"] as? String, "\(activity)")
        session.wait(timeout: 10)

        let stopping = now()
        XCTAssertEqual(try docker(["stop", name]).status, .exited(0))
        XCTAssertLessThan(now() - stopping, 2)
        XCTAssertTrue(try docker(["logs", name]).errorText.contains("berth: workspace-supervisor: stopped"))
    }

    func test_a_fresh_container_with_an_empty_volume_restores_the_workspace_from_s3() throws {
        // moto (signatures checked) on this machine's loopback, which the
        // containers share (host network; sshd off, so no port is taken).
        let moto = try SignedMoto(bucket: "workspaces")
        let s3 = ["SUPERVISOR_BACKUP_S3_URL": moto.url + "/workspaces/ws-1", "AWS_ACCESS_KEY_ID": moto.keyID, "AWS_SECRET_ACCESS_KEY": moto.secret,
                  "SUPERVISOR_BACKUP_PASSWORD": "repository-password-\(Int.random(in: 100_000..<999_999))", "SUPERVISOR_BACKUP_MOUNT_PATH": "/backups"]
        let volumes = (1...2).map { "berth-test-s3-\(getpid())-\($0)-\(Int.random(in: 0..<1_000_000))" }
        defer { volumes.forEach { _ = try? docker(["volume", "rm", "-f", $0]) } }
        let (name, _) = try start(s3.merging(["SSHD_ENABLED": "0"]) { $1 },
                                  flags: ["--network", "host", "-v", "\(volumes[0]):/backups", "--cap-add", "DAC_READ_SEARCH"], port: nil)
        let made = try docker(["exec", "-u", "dev8", name, "sh", "-c", """
            cd /workspace && mkdir -p src/deep && printf 'fn main() {}\\n' > src/main.rs && chmod 640 src/main.rs \\
            && ln -s src/main.rs entry && head -c 300000 /dev/urandom > src/deep/data.bin && chmod 700 src/deep \\
            && find . -mindepth 1 -exec touch -h -d '2024-05-06 07:08:09' {} +
            """])
        XCTAssertEqual(made.status, .exited(0), made.errorText)
        var log = ""
        let deadline = now() + 90
        while now() < deadline && !log.contains("(SIGUSR1): ") {
            // Until the supervisor is up to take it.
            _ = try exec(name, "kill -USR1 $(pidof workspace-supervisor) 2>/dev/null")
            usleep(500_000)
            log = try docker(["logs", name]).errorText
        }
        let backedUp = try XCTUnwrap(log.split(separator: "\n").first { $0.contains("workspace-supervisor: backup ") && $0.contains("(SIGUSR1): ") }, log)
        XCTAssertTrue(backedUp.contains("; s3 ok"), String(backedUp))
        let tree = "cd /workspace && find . -mindepth 1 -printf '%P|%y|%m|%l|%Ts|%s|%u\\n' | sort && find . -type f -exec sha256sum {} + | sort"
        let original = try exec(name, tree)
        XCTAssertTrue(original.outputText.contains("src/deep/data.bin|f|644|"), original.outputText)

        // A new container: nothing on its volume; the same S3 settings.
        let variables = s3.sorted { $0.key < $1.key }.flatMap { ["-e", "\($0.key)=\($0.value)"] }
        let fresh = try docker(["run", "--rm", "--network", "host", "-v", "\(volumes[1]):/backups"] + variables
                               + ["--entrypoint", "/bin/sh", Self.image, "-c", "ls -A /backups | wc -l && workspace-supervisor restore latest /workspace && " + tree],
                               timeout: 180)
        XCTAssertEqual(fresh.status, .exited(0), fresh.errorText)
        let lines = fresh.outputText.split(separator: "\n", maxSplits: 2).map(String.init)
        XCTAssertEqual(lines.first, "0", "the new volume starts empty")
        XCTAssertTrue(lines.count == 3 && lines[1].hasPrefix("restored ") && lines[1].hasSuffix(" from the s3 repository into /workspace as dev8"), fresh.outputText)
        XCTAssertEqual(lines.count == 3 ? lines[2] : "", original.outputText, "contents, modes, symlinks, times and owner (dev8)")
        XCTAssertFalse(fresh.outputText.contains(moto.secret) || fresh.errorText.contains(moto.secret))
    }

    func test_the_workspace_supervisor_backs_up_to_a_volume_and_restores_in_the_container() throws {
        let volume = "berth-test-backups-\(getpid())-\(Int.random(in: 0..<1_000_000))"
        defer { _ = try? docker(["volume", "rm", "-f", volume]) }
        let (name, port) = try start(["SSH_PUBLIC_KEY": publicKey, "SUPERVISOR_BACKUP_MOUNT_PATH": "/backups", "SUPERVISOR_BACKUP_EXCLUDES": "node_modules"],
                                     flags: ["-v", "\(volume):/backups", "--cap-add", "DAC_READ_SEARCH"])
        XCTAssertNotNil(try waitForLogin(port, since: now()))
        let made = try ssh(port, "cd /workspace && mkdir -p src node_modules/x && printf 'fn main() {}\\n' > src/main.rs && chmod 750 src && ln -s src/main.rs entry && echo dep > node_modules/x/i.js")
        XCTAssertEqual(made.status, .exited(0), made.errorText)
        XCTAssertEqual(try exec(name, "curl -fsS -X POST http://127.0.0.1:9000/backup").outputText, "{\"started\": true}\n")
        var listing = ""
        let deadline = now() + 60
        while now() < deadline {
            listing = try docker(["exec", "-e", "SUPERVISOR_BACKUP_MOUNT_PATH=/backups", name, "workspace-supervisor", "list"]).outputText
            if listing.split(separator: "\n").count >= 2 { break }
            usleep(200_000)
        }
        let id = try XCTUnwrap(listing.split(separator: "\n").dropFirst().first?.split(separator: " ").first.map(String.init), listing)
        XCTAssertEqual(try exec(name, "stat -c '%U %a' /backups /backups/restic /backups/restic-password").outputText,
                       "berth-supervisor 700\nberth-supervisor 700\nberth-supervisor 400\n", "restic's repository and its generated password")
        XCTAssertNotEqual(try docker(["exec", "-u", "dev8", name, "ls", "/backups"]).status, .exited(0), "the workspace user cannot even list the snapshots")
        // The way an operator restores: docker exec as root; restic reads
        // the repository, tar unpacks its stream as dev8.
        let restore = try docker(["exec", "-e", "SUPERVISOR_BACKUP_MOUNT_PATH=/backups", name, "workspace-supervisor", "restore", id, "/tmp/restored"])
        XCTAssertEqual(restore.status, .exited(0), restore.errorText)
        let compare = "cd /workspace && find . -path ./node_modules -prune -o -printf '%P %y %m %l\\n' | sort"
        XCTAssertEqual(try exec(name, compare.replacingOccurrences(of: "/workspace", with: "/tmp/restored")).outputText, try exec(name, compare).outputText)
        XCTAssertEqual(try exec(name, "cat /tmp/restored/src/main.rs").outputText, "fn main() {}\n")
        XCTAssertEqual(try exec(name, "test -e /tmp/restored/node_modules; echo $?").outputText, "1\n", "excluded")
        XCTAssertEqual(try exec(name, "find /tmp/restored -not -user dev8 | wc -l").outputText, "0\n", "everything restored belongs to dev8")

        // A change, then docker stop: the last backup lands, the previous
        // services have stopped before it and sshd after, and docker stop
        // ends inside its 10 s without a SIGKILL.
        XCTAssertEqual(try ssh(port, "printf 'fn main() { changed() }\\n' > /workspace/src/main.rs").status, .exited(0))
        let stopping = now()
        XCTAssertEqual(try docker(["stop", name], timeout: 30).status, .exited(0))
        let took = now() - stopping
        XCTAssertLessThan(took, 8, "inside BERTH_SHUTDOWN_TIMEOUT (8 s) and docker stop's 10 s")
        XCTAssertEqual(try docker(["inspect", "-f", "{{.State.ExitCode}}", name]).outputText, "0\n", "berth ended, Docker did not kill it")
        let log = try docker(["logs", name]).errorText
        let lines = log.split(separator: "\n").map(String.init)
        let lastBackup = try XCTUnwrap(lines.firstIndex { $0.contains("workspace-supervisor: backup ") && $0.contains(" (shutdown): ") }, log)
        XCTAssertTrue(lines[lastBackup].contains(" 1 changed, "), lines[lastBackup])
        let supervisorStopped = try XCTUnwrap(lines.firstIndex { $0.contains("berth: workspace-supervisor: stopped") }, log)
        let sshdStopped = try XCTUnwrap(lines.firstIndex { $0.contains("berth: sshd: stopped") }, log)
        XCTAssertLessThan(lastBackup, supervisorStopped)
        XCTAssertLessThan(supervisorStopped, sshdStopped)
        let shutdownID = String(lines[lastBackup].components(separatedBy: "workspace-supervisor: backup ")[1].prefix(8))
        // A new container on the same volume sees it and restores the
        // change (as an operator would: root, not berth's command user).
        let check = try docker(["run", "--rm", "-v", "\(volume):/backups", "-e", "SUPERVISOR_BACKUP_MOUNT_PATH=/backups", "--entrypoint", "/bin/sh", Self.image,
                                "-c", "workspace-supervisor list && workspace-supervisor restore latest /tmp/r >/dev/null && cat /tmp/r/src/main.rs"],
                               timeout: 120)
        XCTAssertEqual(check.status, .exited(0), check.errorText)
        let listed = check.outputText.split(separator: "\n").filter { $0.hasSuffix(" local") }.map { String($0.prefix(8)) }
        XCTAssertEqual(listed, [shutdownID, id], "newest first: the shutdown one, then the one restored above: \(check.outputText)")
        XCTAssertTrue(check.outputText.hasSuffix("fn main() { changed() }\n"), check.outputText)
    }

    func test_bad_input_leaves_a_running_unhealthy_container_with_the_error() throws {
        let (name, _) = try start(["SSH_PUBLIC_KEY": "ssh-ed25519 not-a-key"])
        let deadline = now() + 20
        while now() < deadline, !(try docker(["logs", name]).errorText.contains("berth: provisioning:")) { usleep(100_000) }
        XCTAssertEqual(try docker(["inspect", "-f", "{{.State.Running}} {{.RestartCount}}", name]).outputText, "true 0\n")
        let health = try exec(name, "berth health")
        XCTAssertEqual(health.status, .exited(1))
        XCTAssertTrue(health.outputText.contains("provisioning step ssh-keys failed: SSH_PUBLIC_KEY: line 1 is not an OpenSSH public key"), health.outputText)
        XCTAssertTrue(try docker(["logs", name]).errorText.contains("SSH_PUBLIC_KEY: line 1 is not an OpenSSH public key"))
    }

    func test_secrets_reach_login_shells_but_no_log_argv_bashrc_world_readable_file_or_service() throws {
        let secret = "sk-proj-imagetest-\(Int.random(in: 100_000..<999_999))"
        let (name, port) = try start(["SSH_PUBLIC_KEY": publicKey, "OPENAI_API_KEY": secret])
        XCTAssertNotNil(try waitForLogin(port, since: now()))
        XCTAssertEqual(try ssh(port, "bash -lc 'echo $OPENAI_API_KEY'").outputText, secret + "\n", "a login shell has the key")
        let logs = try docker(["logs", name])
        XCTAssertFalse((logs.outputText + logs.errorText).contains(secret))
        let argv = try exec(name, "cat /proc/[0-9]*/cmdline | tr '\\0' ' '").outputText
        XCTAssertTrue(argv.contains("cat /proc/[0-9]*/cmdline"), "the scan read argv (its own shell's among them): \(argv)")
        XCTAssertFalse(argv.contains(secret))
        let bashrc = try exec(name, "cat /home/dev8/.bashrc")
        XCTAssertEqual(bashrc.status, .exited(0), "the scan read .bashrc: \(bashrc.errorText)")
        XCTAssertFalse(bashrc.outputText.contains(secret))
        XCTAssertEqual(try worldReadableFiles(in: name, containing: secret), [], "world-readable files holding the key")
        let pid = try XCTUnwrap(try servicePIDs(name)["sshd"])
        XCTAssertFalse(try exec(name, "tr '\\0' '\\n' < /proc/\(pid)/environ").outputText.contains("OPENAI_API_KEY"), "sshd's environment")
    }
}
