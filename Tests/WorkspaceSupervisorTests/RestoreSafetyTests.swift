import Foundation
import Glibc
import TestSupport
import WorkspaceSupervisor
import XCTest

/// `workspace-supervisor restore` run by root (as `docker exec` does) on
/// snapshots a workspace user crafted: it must never write as root, never
/// leave a setuid file, never write outside its target, and never trust a
/// store someone else owns. BERTH_USER is `nobody` (uid 65534) here.
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

    /// A snapshot `id` in the store whose archive holds `members` (Python
    /// tarfile calls on `t` with `add(name, ...)`), with a manifest whose
    /// checksum matches: everything an attacker who could write there makes.
    func craft(_ id: String, _ members: String) throws {
        let python = """
        import tarfile, io, hashlib, json, sys, os
        path = sys.argv[1]
        os.makedirs(path, mode=0o700)
        t = tarfile.open(path + "/workspace.tar.gz", "w:gz", format=tarfile.GNU_FORMAT)
        def add(name, type=tarfile.REGTYPE, data=b"x", link="", mode=0o644, uid=0):
            i = tarfile.TarInfo(name); i.type = type; i.linkname = link; i.mode = mode; i.uid = uid; i.gid = uid; i.mtime = 1700000000
            if type == tarfile.REGTYPE:
                i.size = len(data); t.addfile(i, io.BytesIO(data))
            else:
                t.addfile(i)
        \(members)
        t.close()
        data = open(path + "/workspace.tar.gz", "rb").read()
        manifest = {"format": 1, "id": sys.argv[2], "createdAt": "2026-12-01T00:00:00Z", "createdAtMs": 1796083200000, "workspace": "/workspace",
                    "excludes": [], "archive": "workspace.tar.gz", "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "entries": 1,
                    "fingerprint": "0"}
        open(path + "/manifest.json", "w").write(json.dumps(manifest))
        """
        let run = try Subprocess(["/usr/bin/python3", "-c", python, store + "/" + id, id], environment: ["PATH": "/usr/bin:/bin"])
        XCTAssertEqual(run.wait(timeout: 30), .exited(0), run.errorText)
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
        try craft("suid", """
        add("./", tarfile.DIRTYPE, mode=0o755)
        add("./sh", data=open("/bin/sh", "rb").read(), mode=0o4755)
        add("./sgid", data=b"#!/bin/sh\\n", mode=0o2755)
        add("./shared", tarfile.DIRTYPE, mode=0o2775)
        add("./shared/notes", data=b"n\\n", mode=0o640)
        """)
        let run = try restore("suid")
        XCTAssertEqual(run.status, .exited(0), run.errorText)
        XCTAssertTrue(run.outputText.contains(" as nobody"), run.outputText)
        let restored = try listing(target)
        XCTAssertEqual(try scratch.sh("find '\(target)' -perm /6000 | wc -l"), "0\n", "setuid/setgid kept: \(restored)")
        XCTAssertEqual(try scratch.sh("find '\(target)' -user 0 | wc -l"), "0\n", "owned by root: \(restored)")
        XCTAssertEqual(try listing(target), "sgid nobody 755\nsh nobody 755\nshared nobody 775\nshared/notes nobody 640\n",
                       "the other mode bits kept")
    }

    func test_a_symlink_member_then_a_member_written_through_it_is_refused_and_nothing_is_written() throws {
        try craft("through-link", """
        add("./README.md", data=b"innocent\\n")
        add("./link", tarfile.SYMTYPE, link="\(outside)")
        add("./link/evil", data=b"pwned\\n")
        """)
        let run = try restore("through-link")
        XCTAssertEqual(run.status, .exited(1), run.outputText)
        XCTAssertTrue(run.errorText.contains("member './link/evil' goes through a symbolic link member; nothing restored"), run.errorText)
        XCTAssertEqual(try listing(target), "", "nothing extracted")
        XCTAssertEqual(try listing(outside), "", "nothing written through the link")
    }

    func test_absolute_paths_dotdot_hard_links_out_and_device_nodes_are_refused_before_anything_is_written() throws {
        let cases: [(String, String, String)] = [
            ("absolute", "add(\"\(outside)/abs\", data=b\"pwned\\\\n\")", "member '\(outside)/abs' has an absolute path or a '..' component"),
            ("dotdot", "add(\"./ok\")\n    add(\"../../outside/up\", data=b\"pwned\\\\n\")", "member '../../outside/up' has an absolute path or a '..' component"),
            ("inner-dotdot", "add(\"a/../../../outside/b\")", "has an absolute path or a '..' component"),
            ("hardlink", "add(\"./ok\")\n    add(\"./passwd\", tarfile.LNKTYPE, link=\"/etc/passwd\")", "hard link './passwd' points outside the archive"),
            ("device", "add(\"./ok\")\n    add(\"./mem\", tarfile.CHRTYPE)", "member './mem' is of type 'c'"),
            ("fifo", "add(\"./ok\")\n    add(\"./pipe\", tarfile.FIFOTYPE)", "member './pipe' is of type 'p'"),
        ]
        for (id, members, message) in cases {
            try craft(id, members.replacingOccurrences(of: "\n    ", with: "\n"))
            let run = try restore(id)
            XCTAssertEqual(run.status, .exited(1), "\(id): \(run.outputText)")
            XCTAssertTrue(run.errorText.contains(message) && run.errorText.contains("nothing restored"), "\(id): \(run.errorText)")
            XCTAssertEqual(try listing(target), "", "\(id): nothing extracted")
            XCTAssertEqual(try listing(outside), "", "\(id): nothing outside")
        }
    }

    func test_a_store_owned_by_another_user_is_refused_even_with_a_matching_checksum() throws {
        try craft("forged", "add(\"./ok\", data=b\"forged\\\\n\")")
        for (owner, mode) in [("65534", "700"), ("1000", "700"), ("0", "777")] {
            _ = try scratch.sh("chown \(owner) store && chmod \(mode) store")
            let run = try restore("forged")
            XCTAssertEqual(run.status, .exited(1), run.outputText)
            let found = owner == "0" ? "mode 777 lets group or others write" : "owned by uid \(owner)"
            XCTAssertTrue(run.errorText.contains("SUPERVISOR_BACKUP_MOUNT_PATH=\(store): \(found); it must belong to the supervisor's user"),
                          run.errorText)
            XCTAssertEqual(try listing(target), "")
        }
        // A snapshot directory planted by someone else in a good store.
        _ = try scratch.sh("chown 0 store && chmod 700 store && chown -R 65534 store/forged")
        let planted = try restore("forged")
        XCTAssertEqual(planted.status, .exited(1))
        XCTAssertTrue(planted.errorText.contains("\(store)/forged: owned by uid 65534"), planted.errorText)
        XCTAssertEqual(try listing(target), "")
    }

    func test_a_target_that_is_a_symlink_planted_by_the_user_is_refused() throws {
        try craft("plain", "add(\"./ok\")")
        _ = try scratch.sh("ln -s '\(outside)' restores/planted")
        let run = try restore("plain", into: scratch.path + "/restores/planted")
        XCTAssertEqual(run.status, .exited(1))
        XCTAssertTrue(run.errorText.contains("restores/planted: is a symbolic link; nothing restored"), run.errorText)
        XCTAssertEqual(try listing(outside), "")
    }

    func test_restore_as_root_refuses_a_workspace_user_that_is_root() throws {
        try craft("plain", "add(\"./ok\")")
        let run = try SupervisorRun(["SUPERVISOR_BACKUP_MOUNT_PATH": store, "BERTH_USER": "root", "SUPERVISOR_HTTP_ENABLED": "false"],
                                    arguments: ["restore", "plain", target])
        XCTAssertEqual(run.process.wait(timeout: 30), .exited(1))
        XCTAssertTrue(run.log.contains("BERTH_USER=root is root: restore runs tar as the workspace user, never as root"), run.log)
        XCTAssertEqual(try listing(target), "")
    }

    func test_roots_restore_trusts_the_supervisors_store_but_never_one_of_the_workspace_user() throws {
        try craft("theirs", "add(\"./ok\", data=b\"kept\\\\n\")")
        // The supervisor's user stands in as `daemon` (uid 1): its store is
        // what the daemon writes, and root's restore and list accept it.
        _ = try scratch.sh("chown -R 1 store")
        let environment = ["SUPERVISOR_BACKUP_MOUNT_PATH": store, "BERTH_USER": "nobody", "SUPERVISOR_USER": "daemon", "SUPERVISOR_HTTP_ENABLED": "false"]
        let list = try SupervisorRun(environment, arguments: ["list"])
        XCTAssertEqual(list.process.wait(timeout: 30), .exited(0), list.log)
        XCTAssertTrue(list.process.outputText.contains("theirs"), list.process.outputText)
        let restored = try SupervisorRun(environment, arguments: ["restore", "theirs", target])
        XCTAssertEqual(restored.process.wait(timeout: 30), .exited(0), restored.log)
        XCTAssertEqual(try listing(target), "ok nobody 644\n")

        // The same store when the supervisor's user is the workspace user.
        _ = try scratch.sh("rm -f restores/target/ok && chown -R 65534 store")
        let confused = try SupervisorRun(environment.merging(["SUPERVISOR_USER": "nobody"]) { $1 }, arguments: ["restore", "theirs", target])
        XCTAssertEqual(confused.process.wait(timeout: 30), .exited(1))
        XCTAssertTrue(confused.log.contains("SUPERVISOR_BACKUP_MOUNT_PATH=\(store): owned by uid 65534"), confused.log)
        XCTAssertEqual(try listing(target), "")
    }

    func test_restore_run_by_the_workspace_user_extracts_as_itself_with_the_same_checks() throws {
        try craft("suid", "add(\"./sh\", data=b\"#!/bin/sh\\\\n\", mode=0o4755)")
        try craft("through-link", "add(\"./link\", tarfile.SYMTYPE, link=\"\(outside)\")\nadd(\"./link/evil\")")
        _ = try scratch.sh("chown -R 65534 store")
        let asNobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", Built.workspaceSupervisor]
        let environment = ["PATH": "/usr/bin:/bin", "SUPERVISOR_BACKUP_MOUNT_PATH": store, "SUPERVISOR_HTTP_ENABLED": "false"]
        let suid = try Subprocess(asNobody + ["restore", "suid", target], environment: environment)
        XCTAssertEqual(suid.wait(timeout: 30), .exited(0), suid.errorText)
        XCTAssertEqual(try listing(target), "sh nobody 755\n", "no setuid bit, even on the user's own file")
        let link = try Subprocess(asNobody + ["restore", "through-link", target], environment: environment)
        XCTAssertEqual(link.wait(timeout: 30), .exited(1))
        XCTAssertTrue(link.errorText.contains("goes through a symbolic link member"), link.errorText)
        XCTAssertEqual(try listing(outside), "")
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
