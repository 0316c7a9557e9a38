@testable import BerthInit
import BerthCore
import BerthProvisioning
import Glibc
import XCTest

/// The checks a plain `berth -- CMD` makes instead of building the
/// environment dictionary and parsing /etc/passwd must never say "nothing
/// here" where the full path would find something.
final class StartupFastPathTests: XCTestCase {
    private var directory = ""

    override func setUpWithError() throws {
        directory = "/tmp/berth-fast-path-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        XCTAssertEqual(mkdir(directory, 0o755), 0)
    }

    override func tearDown() {
        _ = directoryNames(directory)?.map { unlink(directory + "/" + $0) }
        rmdir(directory)
    }

    private func put(_ name: String, _ text: String) {
        let fd = open(directory + "/" + name, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        _ = text.withCString { Glibc.write(fd, $0, strlen($0)) }
        close(fd)
    }

    func test_the_passwd_scan_matches_whole_names_at_line_starts_only() {
        put("passwd", "root:x:0:0:root:/root:/bin/bash\ndev80:x:1001:1001::/home/dev80:/bin/sh\nxdev8:x:1002:1002::/:/bin/sh\ndev8:x:1000:1000::/home/dev8:/bin/bash")
        let passwd = directory + "/passwd"
        XCTAssertTrue(CommandIdentity.mayHaveAccount("dev8", passwdFile: passwd))
        XCTAssertTrue(CommandIdentity.mayHaveAccount("root", passwdFile: passwd))
        XCTAssertFalse(CommandIdentity.mayHaveAccount("dev", passwdFile: passwd))
        XCTAssertFalse(CommandIdentity.mayHaveAccount("ev8", passwdFile: passwd))
        XCTAssertFalse(CommandIdentity.mayHaveAccount("dev800", passwdFile: passwd))
        // Unreadable: the real lookup decides.
        XCTAssertTrue(CommandIdentity.mayHaveAccount("dev8", passwdFile: directory + "/missing"))
    }

    func test_the_lookup_reads_passwd_and_group_as_bytes_with_their_rules() {
        put("passwd", """
            root:x:0:0:root:/root:/bin/bash
            short:x:5:5
            badid:x:12a:100::/home/badid:/bin/sh
            dev8:x:1000:1000:Dev Eight:/home/dev8:/bin/bash

            dev8:x:2000:2000::/elsewhere:/bin/sh
            extra:x:1001:1001::/home/extra:/bin/zsh:more
            """)
        put("group", """
            root:x:0:
            dev8:x:1000:
            sudo:x:27: dev8 ,extra
            docker:x:999:other,dev8
            docker:x:999:dev8
            broken:x:notanumber:dev8
            three:x:3
            users:x:100:dev80,xdev8
            """)
        func lookup(_ name: String) -> Result<UserAccount, SettingError> {
            Result { () throws(SettingError) in try UserAccount.lookup(name, passwdFile: directory + "/passwd", groupFile: directory + "/group") }
        }
        // The first line of a name wins; member lists are trimmed; a group
        // listed twice counts once; unreadable group lines are skipped.
        XCTAssertEqual(try lookup("dev8").get(), UserAccount(name: "dev8", uid: 1000, gid: 1000, home: "/home/dev8", shell: "/bin/bash", groups: [1000, 27, 999]))
        XCTAssertEqual(try lookup("extra").get(), UserAccount(name: "extra", uid: 1001, gid: 1001, home: "/home/extra", shell: "/bin/zsh", groups: [1001, 27]))
        XCTAssertEqual(try lookup("root").get(), UserAccount(name: "root", uid: 0, gid: 0, home: "/root", shell: "/bin/bash", groups: [0]))
        for name in ["short", "nobody", "dev"] {
            XCTAssertEqual(lookup(name).map(\.name), .failure(SettingError("BERTH_USER=\(name): no such user in \(directory)/passwd")), name)
        }
        XCTAssertEqual(lookup("badid").map(\.name), .failure(SettingError("\(directory)/passwd: the entry for 'badid' has a bad uid or gid")))
    }

    func test_environment_lines_are_the_dictionarys_lines() {
        XCTAssertEqual(currentEnvironmentLines().sorted(), currentEnvironment().map { "\($0.key)=\($0.value)" }.sorted())
        XCTAssertEqual(environmentValue("PATH"), currentEnvironment()["PATH"])
        XCTAssertNil(environmentValue("BERTH_SURELY_UNSET_\(getpid())"))
    }

    func test_path_search_skips_relative_entries_and_finds_executables() {
        put("tool", "#!/bin/sh\n")
        chmod(directory + "/tool", 0o755)
        XCTAssertTrue(isExecutableOnPath("tool", searchPath: "relative::/nonexistent:" + directory))
        XCTAssertFalse(isExecutableOnPath("tool", searchPath: "/nonexistent"))
        XCTAssertFalse(isExecutableOnPath("missing", searchPath: directory))
    }
}
