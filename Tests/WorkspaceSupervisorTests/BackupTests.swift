import Foundation
import Glibc
import TestSupport
import XCTest

/// Snapshots of a real workspace directory with the real tar and gzip:
/// restore round trips, retention, skips, and kills in the middle.
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
        // with spaces, binary data, and a directory to exclude.
        _ = try scratch.sh("""
        mkdir -p workspace/src/deep workspace/empty workspace/node_modules/pkg workspace/bin
        printf 'hello\\n' > workspace/README.md && chmod 640 workspace/README.md
        head -c 70000 /dev/urandom > workspace/src/deep/blob.bin
        printf '#!/bin/sh\\necho run\\n' > workspace/bin/run && chmod 755 workspace/bin/run
        printf 'secret-ish\\n' > 'workspace/src/a file with spaces.txt' && chmod 600 'workspace/src/a file with spaces.txt'
        ln -s ../README.md workspace/src/readme-link
        ln -s /nowhere/at/all workspace/dangling
        printf 'dependency\\n' > workspace/node_modules/pkg/index.js
        chmod 700 workspace/src/deep
        mkdir restores && chown 65534:65534 restores && chmod 711 .
        """)
    }

    func environment(_ extra: [String: String] = [:]) -> [String: String] {
        ["WORKSPACE_DIR": workspace, "SUPERVISOR_BACKUP_MOUNT_PATH": backups, "SUPERVISOR_BACKUP_EXCLUDES": "node_modules",
         "SUPERVISOR_BACKUP_INTERVAL": "1h", "SUPERVISOR_IDE_PORT": "1", "SUPERVISOR_SSH_PORT": "2", "BERTH_USER": "nobody"].merging(extra) { $1 }
    }

    func cli(_ arguments: [String], _ extra: [String: String] = [:]) throws -> Subprocess {
        let run = try SupervisorRun(environment(extra), arguments: arguments)
        run.process.wait(timeout: 60)
        return run.process
    }

    func snapshotIDs() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: backups)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
    }

    /// type, mode and content (or link target) of every path under `root`.
    func tree(_ root: String) throws -> [String: String] {
        let listing = try scratch.sh("cd '\(root)' && find . -mindepth 1 -printf '%P|%y|%m|%l\\n' | sort")
        var result: [String: String] = [:]
        for line in listing.split(separator: "\n") {
            let fields = line.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            var entry = fields[1] + " " + fields[2] + " " + fields[3]
            if fields[1] == "f" { entry += " " + (try scratch.sh("sha256sum '\(root)/\(fields[0])'").split(separator: " ").first.map(String.init) ?? "") }
            result[fields[0]] = entry
        }
        return result
    }

    func test_a_snapshot_restores_byte_for_byte_with_modes_and_symlinks_and_lists() throws {
        let run = try SupervisorRun(environment())
        _ = try run.apiReady()
        run.process.signal(SIGUSR1)
        XCTAssertTrue(run.waitFor("(SIGUSR1): "), run.log)
        let id = try XCTUnwrap(snapshotIDs().first, run.log)
        XCTAssertEqual(snapshotIDs().count, 1)

        // The manifest's checksum is the archive's.
        let manifest = try jsonObject(try XCTUnwrap(readText("\(backups)/\(id)/manifest.json")))
        let sum = try scratch.sh("sha256sum '\(backups)/\(id)/workspace.tar.gz'").split(separator: " ").first.map(String.init)
        XCTAssertEqual(manifest["sha256"] as? String, sum)
        XCTAssertEqual(manifest["excludes"] as? [String], ["node_modules"])
        XCTAssertEqual(try scratch.sh("stat -c %a '\(backups)/\(id)' '\(backups)/\(id)/workspace.tar.gz' '\(backups)/\(id)/manifest.json'"), "700\n600\n600\n",
                       "private, whatever the umask")

        let list = try cli(["list"])
        XCTAssertEqual(list.status, .exited(0), list.errorText)
        XCTAssertTrue(list.outputText.contains(id), list.outputText)

        let target = restores + "/restored"
        let restore = try cli(["restore", id, target])
        XCTAssertEqual(restore.status, .exited(0), restore.errorText)
        XCTAssertTrue(restore.outputText.hasPrefix("restored \(id) "), restore.outputText)
        XCTAssertEqual(try scratch.sh("find '\(target)' -not -user 65534 | wc -l"), "0\n", "everything is the workspace user's")
        var expected = try tree(workspace)
        expected = expected.filter { !$0.key.hasPrefix("node_modules") }
        XCTAssertEqual(try tree(target), expected)
        XCTAssertEqual(try tree(target)["src/readme-link"], "l 777 ../README.md")
        XCTAssertEqual(try tree(target)["src/a file with spaces.txt"]?.prefix(6), "f 600 ")

        // A damaged archive restores nothing.
        _ = try scratch.sh("printf 'x' | dd of='\(backups)/\(id)/workspace.tar.gz' bs=1 seek=100 conv=notrunc 2>/dev/null")
        let damaged = try cli(["restore", id, restores + "/again"])
        XCTAssertEqual(damaged.status, .exited(1))
        XCTAssertTrue(damaged.errorText.contains("checksum does not match the manifest"), damaged.errorText)
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
        var ids: [String] = []
        for round in 1...3 {
            XCTAssertEqual(try http(port, "POST", "/backup").status, 202)
            XCTAssertTrue(run.waitFor("(POST /backup): ", after: run.log.count - 1) && run.log.components(separatedBy: "(POST /backup): ").count - 1 == round, run.log)
            ids = snapshotIDs()
        }
        XCTAssertEqual(ids.count, 2, "keeps the last 2: \(ids)")
        XCTAssertTrue(run.log.contains("; removed "), run.log)
        let status = try jsonObject(try http(port, "GET", "/status").body)
        let backup = try XCTUnwrap(status["backup"] as? [String: Any])
        XCTAssertEqual(backup["snapshots"] as? Int, 2)
        XCTAssertEqual(backup["latest"] as? String, ids.last)
        XCTAssertEqual((backup["last"] as? [String: Any])?["result"] as? String, "created")
        run.process.signal(SIGTERM)
        XCTAssertEqual(run.process.wait(timeout: 5), .exited(0))

        // A snapshot from long ago goes at the next backup when MAX_AGE says so.
        let old = "20200101T000000Z"
        _ = try scratch.sh("cp -a '\(backups)/\(ids[0])' '\(backups)/\(old)' && sed -i 's/\"createdAtMs\": [0-9]*/\"createdAtMs\": 1577836800000/' '\(backups)/\(old)/manifest.json'")
        XCTAssertTrue(try cli(["list"], ["SUPERVISOR_BACKUP_KEEP": "10"]).outputText.contains(old))
        let aged = try SupervisorRun(environment(["SUPERVISOR_BACKUP_KEEP": "10", "SUPERVISOR_BACKUP_MAX_AGE": "30d"]))
        _ = try aged.apiReady()
        aged.process.signal(SIGUSR1)
        XCTAssertTrue(aged.waitFor("(SIGUSR1): "), aged.log)
        XCTAssertFalse(snapshotIDs().contains(old), "\(snapshotIDs())")
        XCTAssertEqual(snapshotIDs().count, 3)
        aged.process.signal(SIGTERM)
        XCTAssertEqual(aged.process.wait(timeout: 5), .exited(0))
    }

    func test_an_idle_unchanged_workspace_is_skipped_at_the_interval_and_a_change_is_not() throws {
        let run = try SupervisorRun(environment(["SUPERVISOR_BACKUP_INTERVAL": "1s"]))
        XCTAssertTrue(run.waitFor("backup 2", timeout: 10) && run.waitFor("(interval): "), run.log)
        XCTAssertTrue(run.waitFor("backup skipped (interval): idle and unchanged since ", timeout: 5), run.log)
        let count = snapshotIDs().count
        XCTAssertEqual(count, 1)
        let mark = run.log.count
        _ = try scratch.sh("printf 'more\\n' >> workspace/README.md")
        XCTAssertTrue(run.waitFor("(interval): ", timeout: 5, after: mark), run.log)
        XCTAssertTrue(run.waitFor("backup 2", timeout: 5, after: mark), run.log)
        XCTAssertEqual(snapshotIDs().count, 2)
        run.process.signal(SIGTERM)
        XCTAssertEqual(run.process.wait(timeout: 5), .exited(0))
    }

    /// A backup big enough to be caught in the middle: 48 MiB that gzip
    /// cannot shrink.
    func startLongBackup(_ run: SupervisorRun) throws {
        _ = try scratch.sh("head -c 50331648 /dev/urandom > workspace/big.bin")
        run.process.signal(SIGUSR1)
        let deadline = now() + 10
        while now() < deadline, !((try? FileManager.default.contentsOfDirectory(atPath: backups)) ?? []).contains(where: { $0.hasPrefix(".partial-") }) {
            usleep(10_000)
        }
        XCTAssertTrue(((try? FileManager.default.contentsOfDirectory(atPath: backups)) ?? []).contains { $0.hasPrefix(".partial-") }, run.log)
        usleep(200_000)
    }

    func test_sigkill_in_the_middle_keeps_earlier_snapshots_whole_and_the_next_start_cleans_up() throws {
        let first = try SupervisorRun(environment())
        _ = try first.apiReady()
        first.process.signal(SIGUSR1)
        XCTAssertTrue(first.waitFor("(SIGUSR1): "), first.log)
        let kept = try XCTUnwrap(snapshotIDs().first)
        let manifest = readText("\(backups)/\(kept)/manifest.json")

        try startLongBackup(first)
        // As berth ends a service: SIGKILL to its process group (tar is in it).
        kill(-first.process.pid, SIGKILL)
        XCTAssertEqual(first.process.wait(timeout: 5), .signaled(SIGKILL, coreDumped: false))
        XCTAssertEqual(snapshotIDs(), [kept], "the interrupted one is not listed")
        XCTAssertEqual(readText("\(backups)/\(kept)/manifest.json"), manifest)
        XCTAssertEqual(try cli(["list"]).outputText.split(separator: "\n").count, 2, "header and the one snapshot")
        let restored = try cli(["restore", kept, restores + "/restored"])
        XCTAssertEqual(restored.status, .exited(0), "the earlier snapshot still restores: \(restored.errorText)")

        let second = try SupervisorRun(environment())
        _ = try second.apiReady()
        XCTAssertFalse(((try? FileManager.default.contentsOfDirectory(atPath: backups)) ?? []).contains { $0.hasPrefix(".") }, "partial removed at start")
        second.process.signal(SIGTERM)
        XCTAssertEqual(second.process.wait(timeout: 5), .exited(0))
    }

    /// tar processes working in `directory` (they write the archive there,
    /// through the snapshot's descriptor).
    func tarsWriting(into directory: String) -> Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).filter { entry in
            guard Int(entry) != nil, let line = readText("/proc/\(entry)/cmdline") else { return false }
            let cwd = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(entry)/cwd")) ?? ""
            return line.hasPrefix("tar\0") && cwd.hasPrefix(directory)
        }.count
    }

    func test_sigterm_in_the_middle_aborts_the_backup_and_exits_0_promptly() throws {
        let run = try SupervisorRun(environment())
        _ = try run.apiReady()
        try startLongBackup(run)
        let stopping = now()
        run.process.signal(SIGTERM)
        XCTAssertEqual(run.process.wait(timeout: 10), .exited(0), run.log)
        XCTAssertLessThan(now() - stopping, 2, "well inside berth's stop grace")
        XCTAssertTrue(run.log.contains("aborting the running backup"), run.log)
        XCTAssertEqual((try? FileManager.default.contentsOfDirectory(atPath: backups)) ?? [], [], "no partial snapshot left")
        XCTAssertEqual(tarsWriting(into: backups), 0, "no tar left running")
    }
}
