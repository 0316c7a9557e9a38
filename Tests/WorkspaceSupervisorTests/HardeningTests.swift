import Foundation
import Glibc
import TestSupport
import XCTest

/// The daemon's credentials stay its own: not in /proc/PID/environ, not
/// readable by a process of its own uid, not handed to its helpers but for
/// the one each needs (restic gets the S3 key in its environment, its only
/// way to take it, and the repository password on its standard input).
final class HardeningTests: XCTestCase {
    var scratch = Scratch()
    let marker = Int.random(in: 100_000..<999_999)
    var secrets: [String: String] {
        ["SUPERVISOR_AGENT_API_KEY": "agent-key-\(marker)", "AWS_SECRET_ACCESS_KEY": "aws-secret-\(marker)",
         "SUPERVISOR_BACKUP_PASSWORD": "repository-password-\(marker)", "SUPERVISOR_HTTP_TOKEN": "http-token-\(marker)-0123456789"]
    }

    override func setUpWithError() throws {
        scratch = Scratch()
        _ = try scratch.sh("mkdir workspace backups && printf 'code\\n' > workspace/main.swift")
    }

    /// Every secret given directly, with everything that uses them on.
    func environment() -> [String: String] {
        ["WORKSPACE_DIR": scratch.path + "/workspace", "SUPERVISOR_BACKUP_MOUNT_PATH": scratch.path + "/backups",
         "SUPERVISOR_IDE_PORT": "1", "SUPERVISOR_SSH_PORT": "2", "SUPERVISOR_BACKUP_INTERVAL": "1h",
         "SUPERVISOR_AGENT_ENABLED": "true", "SUPERVISOR_AGENT_BASE_URL": "http://127.0.0.1:1", "ENVIRONMENT_ID": "env-1",
         "SUPERVISOR_BACKUP_S3_URL": "http://127.0.0.1:1/bucket", "AWS_ACCESS_KEY_ID": "AKIATEST",
         "HARMLESS_MARKER": "visible-\(marker)"].merging(secrets) { $1 }
    }

    func leaked(_ text: String) -> [String] {
        secrets.filter { text.contains($0.value) }.map(\.key)
    }

    func test_secrets_given_directly_are_gone_from_proc_environ_while_the_daemon_runs() throws {
        let run = try SupervisorRun(environment())
        _ = try run.apiReady()
        let environ = try XCTUnwrap(readText("/proc/\(run.process.pid)/environ"), "root reads it")
        XCTAssertTrue(environ.contains("HARMLESS_MARKER=visible-\(marker)"), "the block is the daemon's: \(environ)")
        XCTAssertEqual(leaked(environ), [], "secret values still in /proc/PID/environ")
        XCTAssertFalse(run.log.contains("\(marker)"), run.log)
        run.process.signal(SIGTERM)
        XCTAssertEqual(run.process.wait(timeout: 5), .exited(0), run.log)
    }

    func test_a_process_of_the_daemons_own_uid_cannot_read_its_environ() throws {
        _ = try scratch.sh("chmod 711 . && chown -R 65534:65534 workspace backups")
        let asNobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
        var chosen = environment()
        chosen["SUPERVISOR_AGENT_ENABLED"] = "false"
        chosen["PATH"] = "/usr/bin:/bin"
        chosen["SUPERVISOR_HTTP_ADDR"] = "127.0.0.1:0"
        let daemon = try Subprocess(asNobody + [Built.workspaceSupervisor], environment: chosen)
        defer { daemon.signal(SIGKILL); daemon.wait(timeout: 5) }
        XCTAssertTrue(eventually(10) { _ = daemon.readLine(timeout: 0.05); return daemon.errorText.contains("status API on ") }, daemon.errorText)
        XCTAssertEqual(readText("/proc/\(daemon.pid)/status")?.contains("Uid:\t65534"), true)
        // Read before the scrub could run, too: non-dumpable comes first.
        let reader = try Subprocess(asNobody + ["cat", "/proc/\(daemon.pid)/environ"], environment: ["PATH": "/usr/bin:/bin"])
        XCTAssertNotEqual(reader.wait(timeout: 10), .exited(0), "the same uid read /proc/PID/environ: \(reader.outputText.prefix(200))")
        XCTAssertTrue(reader.errorText.contains("Permission denied"), reader.errorText)
        let proof = try Subprocess(asNobody + ["cat", "/proc/self/environ"], environment: ["PATH": "/usr/bin:/bin", "X": "y"])
        XCTAssertEqual(proof.wait(timeout: 10), .exited(0), "an ordinary process of that uid is readable: \(proof.errorText)")
    }

    /// pids whose parent chain reaches `ancestor`.
    func descendants(of ancestor: pid_t) -> [pid_t] {
        let all = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { pid_t($0) }
        func parent(_ pid: pid_t) -> pid_t? {
            readText("/proc/\(pid)/stat").flatMap { $0.split(separator: ")").last?.split(separator: " ").dropFirst(1).first.flatMap { pid_t($0) } }
        }
        return all.filter { pid in
            var cursor = pid
            for _ in 0..<8 {
                guard let up = parent(cursor), up > 1 else { return false }
                if up == ancestor { return true }
                cursor = up
            }
            return false
        }
    }

    func test_helpers_caught_mid_backup_carry_only_the_credential_they_need() throws {
        _ = try scratch.sh("head -c 50331648 /dev/urandom > workspace/big.bin")
        let run = try SupervisorRun(environment())
        _ = try run.apiReady()
        run.process.signal(SIGUSR1)
        var seen: [String: String] = [:]
        /// restic backups' scheduling: nice value (stat's 19th field) and
        /// I/O class as ionice reads it.
        var priorities: Set<String> = []
        // The local backup, then the S3 repository (its endpoint refuses:
        // restic retries, and is caught at it).
        let deadline = now() + 20
        while now() < deadline, !seen.keys.contains(where: { $0.contains(" s3:") }) {
            for pid in descendants(of: run.process.pid) {
                guard let command = readText("/proc/\(pid)/cmdline"), !command.isEmpty, let environ = readText("/proc/\(pid)/environ") else { continue }
                seen[command.replacingOccurrences(of: "\0", with: " ")] = environ
                if command.hasPrefix("restic\0"), command.contains("\0backup\0"),
                   let nice = readText("/proc/\(pid)/stat")?.split(separator: ")").last?.split(separator: " ")[16],
                   let io = try? Subprocess(["ionice", "-p", "\(pid)"], environment: ["PATH": "/usr/bin:/bin"]) {
                    io.wait(timeout: 5)
                    // Counted only if restic still runs: an exited one (a
                    // zombie, empty cmdline) has no I/O context and reads "none".
                    if io.status == .exited(0), readText("/proc/\(pid)/cmdline") == command {
                        priorities.insert("nice \(nice), \(io.outputText.trimmingWhitespace())")
                    }
                }
            }
            _ = run.process.readLine(timeout: 0.01)
        }
        let local = seen.filter { $0.key.hasPrefix("restic ") && $0.key.contains(" backup ") && !$0.key.contains(" s3:") }
        let remote = seen.filter { $0.key.hasPrefix("restic ") && $0.key.contains(" s3:") }
        XCTAssertFalse(local.isEmpty, "restic's local backup caught: \(seen.keys)")
        XCTAssertFalse(remote.isEmpty, "restic on the S3 repository caught: \(seen.keys)")
        XCTAssertEqual(priorities, ["nice 19, best-effort: prio 7"], "backups yield the CPU and the disk to the user")
        for (command, environ) in seen {
            XCTAssertEqual(leaked(command), [], "\(command) carries a credential in its arguments")
            let allowed = remote[command] != nil ? ["AWS_SECRET_ACCESS_KEY"] : []
            XCTAssertEqual(leaked(environ), allowed, "\(command): credentials in its environment")
        }
        run.process.signal(SIGTERM)
        XCTAssertEqual(run.process.wait(timeout: 10), .exited(0), run.log)
        XCTAssertFalse(run.log.contains("\(marker)"), run.log)
    }

    func test_a_credential_file_others_can_read_is_warned_about_by_name() throws {
        _ = try scratch.sh("printf 'key-\(marker)' > open-key && chmod 644 open-key && printf 'key-\(marker)' > closed-key && chmod 400 closed-key")
        let base = ["WORKSPACE_DIR": scratch.path + "/workspace", "SUPERVISOR_AGENT_ENABLED": "true",
                    "SUPERVISOR_AGENT_BASE_URL": "http://127.0.0.1:1", "ENVIRONMENT_ID": "env-1"]
        let open = try SupervisorRun(base.merging(["SUPERVISOR_AGENT_API_KEY_FILE": scratch.path + "/open-key"]) { $1 })
        _ = try open.apiReady()
        XCTAssertTrue(open.log.contains("warning: SUPERVISOR_AGENT_API_KEY_FILE=\(scratch.path)/open-key: readable by others (mode 644): "
                                        + "the workspace user may read it"), open.log)
        XCTAssertFalse(open.log.contains("key-\(marker)"), open.log)
        open.process.signal(SIGTERM)
        open.process.wait(timeout: 5)
        let closed = try SupervisorRun(base.merging(["SUPERVISOR_AGENT_API_KEY_FILE": scratch.path + "/closed-key"]) { $1 })
        _ = try closed.apiReady()
        XCTAssertFalse(closed.log.contains("readable by others"), closed.log)
        closed.process.signal(SIGTERM)
        closed.process.wait(timeout: 5)
    }
}
