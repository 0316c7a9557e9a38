import Foundation
import Glibc
import TestSupport
import XCTest

/// BERTH_SUDO=packages in a real container with the real sudo: the
/// workspace user installs a Debian package by name, and nothing else.
final class SudoPackagesImageTests: ImageTestCase {
    func waitForRule(_ name: String) throws {
        let deadline = now() + 30
        while now() < deadline {
            if try exec(name, "test -f /etc/sudoers.d/berth").status == .exited(0) { return }
            usleep(200_000)
        }
        XCTFail("no sudoers rule after 30 s")
    }

    func asUser(_ name: String, _ command: String, timeout: Double = 300) throws -> Subprocess {
        try docker(["exec", "-u", "dev8", name, "sh", "-c", command], timeout: timeout)
    }

    func test_the_workspace_user_installs_a_package_by_name_and_nothing_else() throws {
        let (name, _) = try start(["BERTH_SUDO": "packages"])
        try waitForRule(name)
        XCTAssertNotEqual(try exec(name, "command -v hello").status, .exited(0), "hello is installed before the test")
        // Refused before apt-get runs: options, paths, one argument that
        // holds the verb and a program.
        for arguments in ["install-packages -oAPT::Update::Pre-Invoke::=id", "install-packages ./x.deb", "'install-packages /bin/sh'"] {
            let refused = try asUser(name, "sudo -n /usr/local/bin/berth \(arguments)")
            XCTAssertEqual(refused.status, .exited(2), "\(arguments): \(refused.outputText)\(refused.errorText)")
        }
        // sudo gives nothing else.
        let shell = try asUser(name, "sudo -n id -u")
        XCTAssertNotEqual(shell.status, .exited(0), "sudo id ran: \(shell.outputText)")
        XCTAssertFalse(shell.outputText.contains("0"), shell.outputText)
        // A package by name, from the archive.
        let installed = try asUser(name, "sudo -n /usr/local/bin/berth install-packages hello")
        XCTAssertEqual(installed.status, .exited(0), installed.errorText)
        XCTAssertEqual(try asUser(name, "hello -g berth").outputText, "berth\n")
    }
}
