import Foundation
import Glibc
import TestSupport
import XCTest

/// Snapshots of a real workspace directory into a real restic repository on
/// the backup mount: restore round trips, a wrong password and a damaged
/// repository, retention, skips, and kills in the middle.
final class BackupTests: XCTestCase {
    var scratch = Scratch()
    var workspace: String { scratch.path + "/workspace" }
    var backups: String { scratch.path + "/backups" }
    /// Restores go here: run as root, restore unpacks as BERTH_USER
    /// (nobody, uid 65534, in these tests), who owns this directory.
    var restores: String { scratch.path + "/restores" }

    override func setUpWithError() throws {
        scratch = Scratch()
        // Modes, a symlink (and a dangling one), an empty directory, a name
        // with spaces, binary data, old times, and a directory to exclude.
        _ = try scratch.sh("""
        mkdir -p workspace/src/deep workspace/empty workspace/node_modules/pkg workspace/bin
        printf 'hello\\n' > workspace/README.md && chmod 640 workspace/README.md
        head -c 70000 /dev/urandom > workspace/src/deep/blob.bin
        printf '#!/bin/sh\\necho run\\n' > workspace/bin/run && chmod 755 workspace/bin/run
        printf 'secret-ish\\n' > 'workspace/src/a file with spaces.txt' && chmod 600 'workspace/src/a file with spaces.txt'
        touch -d '2021-03-04 05:06:07' workspace/README.md workspace/src/deep/blob.bin
        ln -s ../README.md workspace/src/readme-link
        ln -s /nowhere/at/all workspace/dangling
        printf 'dependency\\n' > workspace/node_modules/pkg/index.js
        chmod 700 workspace/src/deep
        touch -d '2022-01-02 03:04:05' workspace/src/deep workspace/empty
        mkdir restores && chown 65534:65534 restores && chmod 711 .
        """)
    }

    func environment(_ extra: [String: String] = [:]) -> [String: String] {
        ["WORKSPACE_DIR": workspace, "SUPERVISOR_BACKUP_MOUNT_PATH": backups, "SUPERVISOR_BACKUP_EXCLUDES": "node_modules",
         "SUPERVISOR_BACKUP_INTERVAL": "1h", "SUPERVISOR_IDE_PORT": "1", "SUPERVISOR_SSH_PORT": "2", "BERTH_USER": "nobody"].merging(extra) { $1 }
    }

    func cli(_ arguments: [String], _ extra: [String: String] = [:]) throws -> Subprocess {
        let run = try SupervisorRun(environment(extra), arguments: arguments)
        run.process.wait(timeout: 120)
        return run.process
    }

    /// restic itself on the mount's repository, with the password the
    /// daemon generated.
    func restic(_ arguments: [String]) throws -> Subprocess {
        let run = try Subprocess(["restic", "--repo", backups + "/restic", "--password-file", backups + "/restic-password", "--no-cache"] + arguments,
                                 environment: ["PATH": "/usr/bin:/bin", "HOME": "/tmp"])
        run.wait(timeout: 120)
        return run
    }

    /// The repository's snapshots, oldest first, as restic lists them.
    func snapshotIDs() throws -> [String] {
        let list = try restic(["snapshots", "--json"])
        guard list.status == .exited(0) else { throw TestFailure("restic snapshots: \(list.errorText)") }
        let items = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(list.outputText.utf8)) as? [[String: Any]])
        return items.compactMap { $0["short_id"] as? String }
    }

    /// type, mode, modification time and content (or link target) of every
    /// path under `root`. The time to the nearest second: what a tar stream
    /// from `restic dump` carries.
    func tree(_ root: String) throws -> [String: String] {
        let listing = try scratch.sh("cd '\(root)' && find . -mindepth 1 -printf '%P|%y|%m|%l|%T@\\n' | sort")
        var result: [String: String] = [:]
        for line in listing.split(separator: "\n") {
            let fields = line.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            let second = Int((Double(fields[4]) ?? -1).rounded())
            var entry = fields[1] + " " + fields[2] + " " + fields[3] + " @\(second)"
            if fields[1] == "f" { entry += " " + (try scratch.sh("sha256sum '\(root)/\(fields[0])'").split(separator: " ").first.map(String.init) ?? "") }
            result[fields[0]] = entry
        }
        return result
    }

    /// The id in "backup ID (REASON): ..." lines, in order.
    func loggedBackups(_ log: String) -> [String] {
        log.split(separator: "\n").compactMap { line in
            guard let range = line.range(of: "workspace-supervisor: backup ") else { return nil }
            let id = line[range.upperBound...].prefix { $0 != " " }
            return id.count == 8 ? String(id) : nil
        }
    }

    func test_a_snapshot_restores_byte_for_byte_with_modes_symlinks_and_times_and_lists() throws {
        let run = try SupervisorRun(environment())
        _ = try run.apiReady()
        run.process.signal(SIGUSR1)
        XCTAssertTrue(run.waitFor("(SIGUSR1): ", timeout: 60), run.log)
        let id = try XCTUnwrap(loggedBackups(run.log).first, run.log)
        XCTAssertEqual(try snapshotIDs(), [id], "restic's own list")
        XCTAssertEqual(try scratch.sh("stat -c %a backups backups/restic backups/restic-password"), "700\n700\n400\n",
                       "the repository and its password are the supervisor's alone, whatever the umask")

        let list = try cli(["list"])
        XCTAssertEqual(list.status, .exited(0), list.errorText)
        XCTAssertTrue(list.outputText.contains(id) && list.outputText.contains(" local"), list.outputText)

        let target = restores + "/restored"
        let restore = try cli(["restore", id, target])
        XCTAssertEqual(restore.status, .exited(0), restore.errorText)
        XCTAssertEqual(restore.outputText, "restored \(id) from the local repository into \(target) as nobody\n")
        XCTAssertEqual(try scratch.sh("find '\(target)' -not -user 65534 | wc -l"), "0\n", "everything is the workspace user's")
        XCTAssertEqual(try scratch.sh("ls -A backups | grep -c '^.restore-' || true"), "0\n", "restic's tree and the stream are gone from the mount")
        XCTAssertEqual(try scratch.sh("stat -c %a '\(target)'"), "755\n", "the target as its user made it, not the private tree's 0700")
        let expected = try tree(workspace).filter { !$0.key.hasPrefix("node_modules") }
        XCTAssertEqual(try tree(target), expected)
        XCTAssertEqual(try tree(target)["src/readme-link"]?.hasPrefix("l 777 ../README.md @"), true)
        XCTAssertEqual(try tree(target)["src/deep"], "d 700  @1641092645", "a directory's own time, after its files were written")

        // The wrong password, then a damaged repository: a clear error and
        // nothing restored.
        let wrong = try cli(["restore", id, restores + "/wrong"], ["SUPERVISOR_BACKUP_PASSWORD": "not-the-password"])
        XCTAssertEqual(wrong.status, .exited(1))
        XCTAssertTrue(wrong.errorText.contains("wrong password or no key found"), wrong.errorText)
        XCTAssertEqual(access(restores + "/wrong", F_OK), -1, "nothing restored")
        // Every pack's blobs zeroed, its header (the last bytes) left.
        _ = try scratch.sh("""
        for pack in $(find backups/restic/data -type f); do
            head -c $(( $(stat -c %s "$pack") - 40 )) /dev/zero | dd of="$pack" conv=notrunc 2>/dev/null
        done
        """)
        let damaged = try cli(["restore", id, restores + "/again"])
        XCTAssertEqual(damaged.status, .exited(1))
        XCTAssertTrue(damaged.errorText.contains("local repository: restic ") && damaged.errorText.hasSuffix("; nothing restored\n"), damaged.errorText)
        XCTAssertFalse(damaged.errorText.contains("runtime/"), "restic's own words, not a line of its stack: \(damaged.errorText)")
        XCTAssertEqual(access(restores + "/again", F_OK), -1, "nothing restored")

        run.process.signal(SIGTERM)
        XCTAssertEqual(run.process.wait(timeout: 5), .exited(0))
    }

    func test_a_store_the_workspace_user_could_rewrite_is_refused_and_no_snapshot_is_taken() throws {
        let cases: [(String, String)] = [
            ("mkdir backups && chown 65534 backups && chmod 700 backups", "owned by uid 65534"),
            ("mkdir backups && chown 1000 backups && chmod 700 backups", "owned by uid 1000"),
            ("mkdir backups && chmod 777 backups", "mode 777 lets group or others write"),
            ("mkdir real && ln -s real backups", "is a symbolic link"),
        ]
        for (setup, found) in cases {
            _ = try scratch.sh("rm -rf backups real && " + setup)
            let run = try SupervisorRun(environment())
            let port = try run.apiReady()
            let message = "SUPERVISOR_BACKUP_MOUNT_PATH=\(backups): \(found); it must belong to the supervisor's user (uid 0) "
                + "and not be writable by others, or the workspace user could rewrite snapshots"
            XCTAssertTrue(run.log.contains("backups refused: " + message), run.log)
            XCTAssertEqual(try http(port, "POST", "/backup").status, 202)
            XCTAssertTrue(run.waitFor("backup failed (POST /backup): " + message), run.log)
            XCTAssertEqual(try scratch.sh("find backups/ real/ -mindepth 1 2>/dev/null | wc -l"), "0\n", "nothing written into it: \(setup)")
            let status = try jsonObject(try http(port, "GET", "/status").body)
            XCTAssertEqual((status["backup"] as? [String: Any])?["storeError"] as? String, message)
            run.process.signal(SIGTERM)
            XCTAssertEqual(run.process.wait(timeout: 5), .exited(0), run.log)
        }
    }

    func test_retention_keeps_the_last_n_and_drops_snapshots_past_the_age() throws {
        let run = try SupervisorRun(environment(["SUPERVISOR_BACKUP_KEEP": "2"]))
        let port = try run.apiReady()
        for round in 1...3 {
            // Something new each time: an unchanged workspace is not backed up again.
            _ = try scratch.sh("echo \(round) > workspace/round")
            XCTAssertEqual(try http(port, "POST", "/backup").status, 202)
            XCTAssertTrue(run.waitFor("(POST /backup): ", timeout: 60, after: run.log.count - 1)
                          && run.log.components(separatedBy: "(POST /backup): ").count - 1 == round, run.log)
        }
        let logged = loggedBackups(run.log)
        XCTAssertEqual(logged.count, 3, run.log)
        XCTAssertEqual(try snapshotIDs(), Array(logged.suffix(2)), "keeps the last 2")
        XCTAssertTrue(run.log.contains("; removed 1 older"), run.log)
        let status = try jsonObject(try http(port, "GET", "/status").body)
        let backup = try XCTUnwrap(status["backup"] as? [String: Any])
        XCTAssertEqual(backup["snapshots"] as? Int, 2)
        XCTAssertEqual(backup["latest"] as? String, logged.last)
        XCTAssertEqual((backup["last"] as? [String: Any])?["result"] as? String, "created")
        run.process.signal(SIGTERM)
        XCTAssertEqual(run.process.wait(timeout: 5), .exited(0))

        // A snapshot from long ago goes at the next backup when MAX_AGE says so.
        let old = try restic(["backup", "--json", "--tag", "berth", "--host", "elsewhere", "--time", "2020-01-01 00:00:00", workspace + "/README.md"])
        XCTAssertEqual(old.status, .exited(0), old.errorText)
        XCTAssertEqual(try snapshotIDs().count, 3)
        _ = try scratch.sh("echo 4 > workspace/round")
        let aged = try SupervisorRun(environment(["SUPERVISOR_BACKUP_KEEP": "10", "SUPERVISOR_BACKUP_MAX_AGE": "30d"]))
        _ = try aged.apiReady()
        aged.process.signal(SIGUSR1)
        XCTAssertTrue(aged.waitFor("(SIGUSR1): ", timeout: 60), aged.log)
        let newest = try XCTUnwrap(loggedBackups(aged.log).last)
        XCTAssertEqual(try snapshotIDs(), Array(logged.suffix(2)) + [newest], "the 2020 one is gone (whatever its host and paths), the recent ones kept")
        aged.process.signal(SIGTERM)
        XCTAssertEqual(aged.process.wait(timeout: 5), .exited(0))
    }

    func test_an_asked_for_backup_of_an_unchanged_workspace_is_skipped_and_a_content_change_under_the_old_mtime_is_not() throws {
        let run = try SupervisorRun(environment())
        let port = try run.apiReady()
        XCTAssertEqual(try http(port, "POST", "/backup").status, 202)
        XCTAssertTrue(run.waitFor("(POST /backup): ", timeout: 60), run.log)
        let first = try XCTUnwrap(loggedBackups(run.log).first, run.log)
        XCTAssertEqual(try http(port, "POST", "/backup").status, 202)
        XCTAssertTrue(run.waitFor("backup skipped (POST /backup): unchanged since \(first), which stands", timeout: 60), run.log)
        XCTAssertEqual(try snapshotIDs(), [first], "no identical snapshot to push a distinct one out of KEEP")
        // Same size, same modification time, other bytes: only its change
        // time (which no user can set back) says so.
        _ = try scratch.sh("cd workspace && touch -r README.md /tmp/berth-mtime-\(getpid()) && printf X | dd of=README.md bs=1 count=1 conv=notrunc 2>/dev/null && touch -r /tmp/berth-mtime-\(getpid()) README.md && rm /tmp/berth-mtime-\(getpid())")
        let before = run.log.count
        run.process.signal(SIGUSR1)
        XCTAssertTrue(run.waitFor("(SIGUSR1): ", timeout: 60, after: before), run.log)
        let second = try XCTUnwrap(loggedBackups(run.log).last, run.log)
        XCTAssertNotEqual(second, first, run.log)
        XCTAssertEqual(try snapshotIDs(), [first, second])
        run.process.signal(SIGTERM)
        XCTAssertEqual(run.process.wait(timeout: 5), .exited(0))
    }

    func test_an_idle_unchanged_workspace_is_skipped_at_the_interval_and_a_change_is_not() throws {
        let run = try SupervisorRun(environment(["SUPERVISOR_BACKUP_INTERVAL": "1s"]))
        XCTAssertTrue(run.waitFor("backup skipped (interval): idle and unchanged since ", timeout: 60), run.log)
        let first = loggedBackups(run.log)
        XCTAssertEqual(first.count, 1, run.log)
        XCTAssertTrue(run.log.contains("idle and unchanged since \(first[0])"), run.log)
        let mark = run.log.count
        _ = try scratch.sh("printf 'more\\n' >> workspace/README.md")
        XCTAssertTrue(run.waitFor("workspace-supervisor: backup ", timeout: 60, after: mark), run.log)
        XCTAssertTrue(run.log.dropFirst(mark).contains(" 1 changed, "), "restic saw one changed file: \(run.log)")
        XCTAssertEqual(try snapshotIDs().count, 2)
        run.process.signal(SIGTERM)
        XCTAssertEqual(run.process.wait(timeout: 5), .exited(0))
    }

    func test_each_repository_is_checked_after_the_first_backup_and_then_at_the_interval() throws {
        let run = try SupervisorRun(environment(["SUPERVISOR_BACKUP_CHECK_INTERVAL": "1h"]))
        let port = try run.apiReady()
        for round in 1...2 {
            if round == 2 { _ = try scratch.sh("printf 'more\\n' >> workspace/README.md") }
            XCTAssertEqual(try http(port, "POST", "/backup").status, 202)
            XCTAssertTrue(run.waitFor("(POST /backup): ", timeout: 60, after: run.log.count - 1)
                          && run.log.components(separatedBy: "(POST /backup): ").count - 1 == round, run.log)
        }
        let lines = run.log.split(separator: "\n").filter { $0.contains("(POST /backup): ") }
        XCTAssertEqual(lines.map { $0.hasSuffix("; check local: ok") }, [true, false], "checked once, not again within the hour: \(lines)")
        let status = try jsonObject(try http(port, "GET", "/status").body)
        XCTAssertEqual((status["backup"] as? [String: Any])?["checks"] as? [String], ["local: ok"])
        run.process.signal(SIGTERM)
        XCTAssertEqual(run.process.wait(timeout: 5), .exited(0))
    }

    /// The pids of restic backups working in the workspace.
    func resticBackups() -> [pid_t] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry in
            guard let pid = pid_t(entry), let line = readText("/proc/\(entry)/cmdline") else { return nil }
            let cwd = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(entry)/cwd")) ?? ""
            return line.hasPrefix("restic\0") && line.contains("\0backup\0") && cwd == workspace ? pid : nil
        }
    }

    /// A backup big enough to be caught in the middle: 256 MiB that does
    /// not compress, and restic seen reading it.
    func startLongBackup(_ run: SupervisorRun) throws {
        _ = try scratch.sh("head -c 268435456 /dev/urandom > workspace/big.bin")
        run.process.signal(SIGUSR1)
        XCTAssertTrue(eventually(30) { !resticBackups().isEmpty }, run.log)
        usleep(300_000)
    }

    func test_sigkill_in_the_middle_keeps_the_repository_whole_and_the_next_start_backs_up() throws {
        let first = try SupervisorRun(environment())
        _ = try first.apiReady()
        first.process.signal(SIGUSR1)
        XCTAssertTrue(first.waitFor("(SIGUSR1): ", timeout: 60), first.log)
        let kept = try XCTUnwrap(loggedBackups(first.log).first)

        try startLongBackup(first)
        // As berth ends a service: SIGKILL to its process group (restic is in it).
        kill(-first.process.pid, SIGKILL)
        XCTAssertEqual(first.process.wait(timeout: 5), .signaled(SIGKILL, coreDumped: false))
        XCTAssertTrue(eventually(5) { resticBackups().isEmpty }, "restic died with its group")
        XCTAssertEqual(try snapshotIDs(), [kept], "the interrupted one is not a snapshot")
        let check = try restic(["check", "--no-lock"])
        XCTAssertEqual(check.status, .exited(0), "the repository is consistent: \(check.outputText)\(check.errorText)")
        let restored = try cli(["restore", kept, restores + "/restored"])
        XCTAssertEqual(restored.status, .exited(0), "the earlier snapshot still restores: \(restored.errorText)")

        // The killed run's lock goes at the next start, and backups work.
        let second = try SupervisorRun(environment())
        _ = try second.apiReady()
        second.process.signal(SIGUSR1)
        XCTAssertTrue(second.waitFor("(SIGUSR1): ", timeout: 120), second.log)
        XCTAssertEqual(loggedBackups(second.log).count, 1, second.log)
        XCTAssertEqual(try snapshotIDs().count, 2)
        second.process.signal(SIGTERM)
        XCTAssertEqual(second.process.wait(timeout: 5), .exited(0))
    }

    func test_sigterm_in_the_middle_aborts_the_backup_and_exits_0_promptly() throws {
        let run = try SupervisorRun(environment())
        _ = try run.apiReady()
        try startLongBackup(run)
        let stopping = now()
        run.process.signal(SIGTERM)
        XCTAssertEqual(run.process.wait(timeout: 10), .exited(0), run.log)
        XCTAssertLessThan(now() - stopping, 3, "well inside berth's stop grace")
        XCTAssertTrue(run.log.contains("aborting the running backup (no shutdown budget): there is no snapshot yet"), run.log)
        XCTAssertEqual(resticBackups(), [], "no restic left running")
        XCTAssertEqual(try scratch.sh("ls backups/restic/locks | wc -l"), "0\n", "restic removed its lock")
        XCTAssertEqual(try snapshotIDs(), [], "no snapshot of half a workspace")
    }

    /// The daemon, and the id of the one snapshot SIGUSR1 made it take.
    func daemonWithOneSnapshot(_ extra: [String: String]) throws -> (SupervisorRun, String) {
        let run = try SupervisorRun(environment(extra))
        _ = try run.apiReady()
        run.process.signal(SIGUSR1)
        XCTAssertTrue(run.waitFor("(SIGUSR1): ", timeout: 60), run.log)
        return (run, try XCTUnwrap(loggedBackups(run.log).first, run.log))
    }

    /// The last snapshot's files, as restic dumps them.
    func latestFile(_ path: String) throws -> String {
        let dump = try restic(["dump", "latest", path])
        guard dump.status == .exited(0) else { throw TestFailure("restic dump: \(dump.errorText)") }
        return dump.outputText
    }

    func test_sigterm_with_changes_pending_takes_a_last_backup_within_its_budget_and_exits_0() throws {
        let (run, first) = try daemonWithOneSnapshot(["SUPERVISOR_BACKUP_SHUTDOWN_BUDGET": "20s"])
        _ = try scratch.sh("printf 'written just before the stop\\n' >> workspace/README.md")
        let mark = run.log.count
        run.process.signal(SIGTERM)
        XCTAssertEqual(run.process.wait(timeout: 30), .exited(0), run.log)
        let shutdown = String(run.log.dropFirst(mark))
        let announced = try XCTUnwrap(shutdown.range(of: "a last backup within 20 s, if the workspace changed"), shutdown)
        let landed = try XCTUnwrap(shutdown.range(of: "workspace-supervisor: backup "), shutdown)
        XCTAssertLessThan(announced.lowerBound, landed.lowerBound)
        XCTAssertTrue(shutdown.contains(" (shutdown): ") && shutdown.contains(" 1 changed, "), "restic saw the one changed file: \(shutdown)")
        XCTAssertFalse(shutdown.contains("aborting"), shutdown)
        XCTAssertFalse(shutdown.contains("; check "), "no integrity check eats the budget: \(shutdown)")
        let ids = try snapshotIDs()
        XCTAssertEqual(ids.count, 2, "\(ids)")
        XCTAssertEqual(ids.first, first)
        XCTAssertEqual(ids.last, loggedBackups(run.log).last)
        XCTAssertTrue(try latestFile("/README.md").hasSuffix("written just before the stop\n"), "the last snapshot holds the change")
        XCTAssertEqual(try scratch.sh("ls backups/restic/locks | wc -l"), "0\n", "restic removed its lock")
    }

    func test_sigterm_with_nothing_changed_takes_no_last_backup() throws {
        let (run, first) = try daemonWithOneSnapshot(["SUPERVISOR_BACKUP_SHUTDOWN_BUDGET": "20s"])
        run.process.signal(SIGTERM)
        XCTAssertEqual(run.process.wait(timeout: 30), .exited(0), run.log)
        XCTAssertTrue(run.log.contains("backup skipped (shutdown): unchanged since \(first)"), run.log)
        XCTAssertEqual(try snapshotIDs(), [first])
    }

    func test_a_last_backup_past_its_budget_is_given_up_and_the_previous_snapshot_stands() throws {
        let (run, first) = try daemonWithOneSnapshot(["SUPERVISOR_BACKUP_SHUTDOWN_BUDGET": "1s"])
        // 256 MiB that does not compress: far more than a second's work.
        _ = try scratch.sh("head -c 268435456 /dev/urandom > workspace/big.bin")
        let stopping = now()
        run.process.signal(SIGTERM)
        XCTAssertEqual(run.process.wait(timeout: 10), .exited(0), run.log)
        XCTAssertLessThan(now() - stopping, 3.5, "the budget and restic's stop, inside the stop grace berth gives (budget + 2 s)")
        XCTAssertTrue(run.log.contains("aborting the running backup (the 1 s budget ran out): the previous snapshot \(first) stands"), run.log)
        XCTAssertEqual(resticBackups(), [], "no restic left running")
        XCTAssertEqual(try snapshotIDs(), [first], "no snapshot of half a workspace")
        let check = try restic(["check", "--no-lock"])
        XCTAssertEqual(check.status, .exited(0), "the repository is consistent: \(check.outputText)\(check.errorText)")
        // restic removes its lock on SIGINT, unless the signal came while it
        // was taking it (a race inside restic 0.14): the next start removes
        // any lock left, and backs up.
        let next = try SupervisorRun(environment())
        _ = try next.apiReady()
        next.process.signal(SIGUSR1)
        XCTAssertTrue(next.waitFor("(SIGUSR1): ", timeout: 120), next.log)
        XCTAssertEqual(try snapshotIDs().count, 2, next.log)
        next.process.signal(SIGTERM)
        XCTAssertEqual(next.process.wait(timeout: 10), .exited(0))
    }
}
