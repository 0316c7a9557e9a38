import Foundation
import Glibc
import TestSupport
import WorkspaceSupervisor
import XCTest

/// `workspace-supervisor restore` run by root (as `docker exec` does) on
/// snapshots of what a workspace held: it must never write as root, never
/// leave a setuid file or a device node, never write outside its target,
/// and never trust a store someone else owns. BERTH_USER is `nobody` (uid
/// 65534) here. The snapshots are real restic ones; what restic cannot
/// hold (a name through a symlink, `..`, a hard link out) is refused by the
/// listing check, tested on listings below.
final class RestoreSafetyTests: XCTestCase {
    var scratch = Scratch()
    var store: String { scratch.path + "/store" }
    var target: String { scratch.path + "/restores/target" }
    var outside: String { scratch.path + "/outside" }

    override func setUpWithError() throws {
        scratch = Scratch()
        _ = try scratch.sh("""
        chmod 711 . && mkdir -m 700 store && mkdir -m 711 restores && mkdir -m 777 outside
        mkdir restores/target && chown 65534:65534 restores/target
        """)
    }

    /// A snapshot in the store's restic repository of a tree root made with
    /// `script` (run in it): what a workspace holds that root, or the
    /// workspace user, made. Returns its short id.
    @discardableResult
    func craft(_ script: String) throws -> String {
        let made = try scratch.sh("""
        rm -rf source && mkdir source && cd source && \(script)
        cd .. && [ -e store/restic-password ] || { printf 'pw\\n' > store/restic-password && chmod 400 store/restic-password; }
        export RESTIC_PASSWORD_FILE="$PWD/store/restic-password"
        [ -e store/restic/config ] || restic --repo store/restic --no-cache init -q
        cd source && restic --repo ../store/restic --no-cache backup --json --quiet --tag berth --host workspace . | tail -n 1
        """)
        let summary = try jsonObject(made.split(separator: "\n").last.map(String.init) ?? "")
        return try XCTUnwrap(summary["snapshot_id"] as? String, made)
    }

    func restore(_ id: String, into directory: String? = nil) throws -> Subprocess {
        let run = try SupervisorRun(["SUPERVISOR_BACKUP_MOUNT_PATH": store, "WORKSPACE_DIR": scratch.path + "/workspace", "BERTH_USER": "nobody",
                                     "SUPERVISOR_HTTP_ENABLED": "false"],
                                    arguments: ["restore", id, directory ?? target])
        run.process.wait(timeout: 60)
        return run.process
    }

    func listing(_ directory: String) throws -> String {
        try scratch.sh("cd '\(directory)' && find . -mindepth 1 -printf '%P %u %m\\n' | sort")
    }

    func test_a_setuid_root_shell_in_a_snapshot_restores_as_the_workspace_users_file_without_setuid() throws {
        let id = try craft("""
        cp /bin/sh sh && chmod 4755 sh
        printf '#!/bin/sh\\n' > sgid && chmod 2755 sgid
        mkdir shared && chmod 2775 shared && printf 'n\\n' > shared/notes && chmod 640 shared/notes
        """)
        let run = try restore(id)
        XCTAssertEqual(run.status, .exited(0), run.errorText)
        XCTAssertTrue(run.outputText.contains(" as nobody"), run.outputText)
        let restored = try listing(target)
        XCTAssertEqual(try scratch.sh("find '\(target)' -perm /6000 | wc -l"), "0\n", "setuid/setgid kept: \(restored)")
        XCTAssertEqual(try scratch.sh("find '\(target)' -user 0 | wc -l"), "0\n", "owned by root: \(restored)")
        XCTAssertEqual(try listing(target), "sgid nobody 755\nsh nobody 755\nshared nobody 775\nshared/notes nobody 640\n",
                       "the other mode bits kept")
    }

    func test_device_nodes_and_fifos_in_a_snapshot_come_back_as_empty_files_of_the_workspace_user() throws {
        // restic keeps them as such; its tar stream carries them as plain
        // files, and nothing else could make a device as the workspace user.
        let id = try craft("printf 'ok\\n' > ok && mknod mem c 1 1 && mkfifo pipe && chmod 666 mem pipe")
        let run = try restore(id)
        XCTAssertEqual(run.status, .exited(0), run.errorText)
        XCTAssertEqual(try scratch.sh("cd '\(target)' && find . -mindepth 1 -printf '%P %y %s %u\\n' | sort"),
                       "mem f 0 nobody\nok f 3 nobody\npipe f 0 nobody\n")
    }

    /// What no restic tree holds, but a forged repository's stream could:
    /// the listing check refuses it, naming the member.
    func test_the_listing_check_refuses_links_out_absolute_names_dotdot_and_special_files() throws {
        let line = { (type: String, name: String, link: String?) in
            "\(type)rw-r--r-- 0/0 1 2026-01-01 00:00 \"\(name)\"" + (link.map { type == "h" ? " link to \"\($0)\"" : " -> \"\($0)\"" } ?? "")
        }
        let cases: [([String], String)] = [
            ([line("-", "./README.md", nil), line("l", "./link", outside), line("-", "./link/evil", nil)],
             "member './link/evil' goes through a symbolic link member"),
            ([line("-", outside + "/abs", nil)], "member '\(outside)/abs' has an absolute path or a '..' component"),
            ([line("-", "./ok", nil), line("-", "../../outside/up", nil)], "member '../../outside/up' has an absolute path or a '..' component"),
            ([line("-", "a/../../../outside/b", nil)], "member 'a/../../../outside/b' has an absolute path or a '..' component"),
            ([line("-", "./ok", nil), line("h", "./passwd", "/etc/passwd")], "hard link './passwd' points outside the archive ('/etc/passwd')"),
            ([line("l", "./l", "/etc"), line("h", "./h", "./l/passwd")], "hard link './h' goes through a symbolic link member"),
            ([line("-", "./ok", nil), line("c", "./mem", nil)], "member './mem' is of type 'c' (a device, FIFO or other special file)"),
        ]
        for (lines, message) in cases {
            let members = try ArchiveMember.parseListing(lines.joined(separator: "\n"))
            XCTAssertEqual(ArchiveMember.refusal(members), message, lines.joined(separator: "\n"))
        }
        XCTAssertNil(ArchiveMember.refusal(try ArchiveMember.parseListing(line("-", "./a", nil) + "\n" + line("l", "./b", "a") + "\n"
                                                                          + line("h", "./c", "./a"))))
    }

    func test_a_store_or_repository_owned_by_another_user_is_refused() throws {
        let id = try craft("printf 'forged\\n' > ok")
        for (owner, mode) in [("65534", "700"), ("1000", "700"), ("0", "777")] {
            _ = try scratch.sh("chown \(owner) store && chmod \(mode) store")
            let run = try restore(id)
            XCTAssertEqual(run.status, .exited(1), run.outputText)
            let found = owner == "0" ? "mode 777 lets group or others write" : "owned by uid \(owner)"
            XCTAssertTrue(run.errorText.contains("SUPERVISOR_BACKUP_MOUNT_PATH=\(store): \(found); it must belong to the supervisor's user"),
                          run.errorText)
            XCTAssertEqual(try listing(target), "")
        }
        // A repository planted by someone else in a good store.
        _ = try scratch.sh("chown 0 store && chmod 700 store && chown -R 65534 store/restic")
        let planted = try restore(id)
        XCTAssertEqual(planted.status, .exited(1))
        XCTAssertTrue(planted.errorText.contains("\(store)/restic: owned by uid 65534"), planted.errorText)
        XCTAssertEqual(try listing(target), "")
        // And a password file others may read.
        _ = try scratch.sh("chown -R 0 store/restic && chmod 444 store/restic-password")
        let readable = try restore(id)
        XCTAssertEqual(readable.status, .exited(1))
        XCTAssertTrue(readable.errorText.contains("\(store)/restic-password: not a private file of the supervisor's user"), readable.errorText)
    }

    func test_a_target_that_is_a_symlink_planted_by_the_user_is_refused() throws {
        let id = try craft("touch ok")
        _ = try scratch.sh("ln -s '\(outside)' restores/planted")
        let run = try restore(id, into: scratch.path + "/restores/planted")
        XCTAssertEqual(run.status, .exited(1))
        XCTAssertTrue(run.errorText.contains("restores/planted: is a symbolic link; nothing restored"), run.errorText)
        XCTAssertEqual(try listing(outside), "")
    }

    func test_restore_as_root_refuses_a_workspace_user_that_is_root() throws {
        let id = try craft("touch ok")
        let run = try SupervisorRun(["SUPERVISOR_BACKUP_MOUNT_PATH": store, "BERTH_USER": "root", "SUPERVISOR_HTTP_ENABLED": "false"],
                                    arguments: ["restore", id, target])
        XCTAssertEqual(run.process.wait(timeout: 30), .exited(1))
        XCTAssertTrue(run.log.contains("BERTH_USER=root is root: restore runs tar as the workspace user, never as root"), run.log)
        XCTAssertEqual(try listing(target), "")
    }

    func test_roots_restore_trusts_the_supervisors_store_but_never_one_of_the_workspace_user() throws {
        let id = try craft("printf 'kept\\n' > ok && chmod 644 ok")
        // The supervisor's user stands in as `daemon` (uid 1): its store is
        // what the daemon writes, and root's restore and list accept it.
        // Without `locks/`, a locking restic would make it, root's.
        _ = try scratch.sh("chown -R 1 store && rmdir store/restic/locks")
        let environment = ["SUPERVISOR_BACKUP_MOUNT_PATH": store, "BERTH_USER": "nobody", "SUPERVISOR_USER": "daemon", "SUPERVISOR_HTTP_ENABLED": "false"]
        let list = try SupervisorRun(environment, arguments: ["list"])
        XCTAssertEqual(list.process.wait(timeout: 30), .exited(0), list.log)
        XCTAssertTrue(list.process.outputText.contains(id), list.process.outputText)
        let restored = try SupervisorRun(environment, arguments: ["restore", id, target])
        XCTAssertEqual(restored.process.wait(timeout: 30), .exited(0), restored.log)
        XCTAssertEqual(try listing(target), "ok nobody 644\n")
        XCTAssertEqual(try scratch.sh("find store -not -user 1"), "", "root's list and restore wrote nothing into the supervisor's store")

        // The same store when the supervisor's user is the workspace user.
        _ = try scratch.sh("rm -f restores/target/ok && chown -R 65534 store")
        let confused = try SupervisorRun(environment.merging(["SUPERVISOR_USER": "nobody"]) { $1 }, arguments: ["restore", id, target])
        XCTAssertEqual(confused.process.wait(timeout: 30), .exited(1))
        XCTAssertTrue(confused.log.contains("SUPERVISOR_BACKUP_MOUNT_PATH=\(store): owned by uid 65534"), confused.log)
        XCTAssertEqual(try listing(target), "")
    }

    func test_restore_run_by_the_workspace_user_extracts_as_itself_without_setuid() throws {
        let suid = try craft("printf '#!/bin/sh\\n' > sh && chmod 4755 sh")
        _ = try scratch.sh("chown -R 65534 store")
        let asNobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", Built.workspaceSupervisor]
        let environment = ["PATH": "/usr/bin:/bin", "SUPERVISOR_BACKUP_MOUNT_PATH": store, "SUPERVISOR_HTTP_ENABLED": "false"]
        let restored = try Subprocess(asNobody + ["restore", suid, target], environment: environment)
        XCTAssertEqual(restored.wait(timeout: 30), .exited(0), restored.errorText)
        XCTAssertEqual(restored.outputText, "restored \(suid) from the local repository into \(target)\n", "as itself: no 'as' user")
        XCTAssertEqual(try listing(target), "sh nobody 755\n", "no setuid bit, even on the user's own file")
    }

    func test_listing_lines_parse_with_quoted_names_and_link_targets() throws {
        let members = try ArchiveMember.parseListing("""
        -rw-r--r-- 0/0               1 1970-01-01 00:00 "we\\"ird\\nname\\\\ \\303\\251"
        lrw-r--r-- 0/0               0 1970-01-01 00:00 "./link" -> "/etc"
        hrw-r--r-- 0/0               0 1970-01-01 00:00 "hl" link to "a b"
        """)
        XCTAssertEqual(members.map(\.path), ["we\"ird\nname\\ é", "./link", "hl"])
        XCTAssertEqual(members.map(\.linkTarget), [nil, "/etc", "a b"])
        XCTAssertEqual(members.map(\.type), ["-", "l", "h"])
    }
}
