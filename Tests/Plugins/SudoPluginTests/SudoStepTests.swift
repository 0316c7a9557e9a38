import Foundation
import Glibc
import TestSupport
import XCTest

/// sudo: berth as PID 1 chrooted in a throwaway root with Debian's sudo and
/// visudo; the rule it writes is checked again by this machine's visudo.
/// (A real `sudo` as dev8 is in the image tests: sudo needs PAM.)
final class SudoStepTests: XCTestCase {
    func root(sudoers: String = "Defaults env_reset\nroot ALL=(ALL:ALL) ALL\n@includedir /etc/sudoers.d\n", withSudo: Bool = true) throws -> ThrowawayRoot {
        let root = try ThrowawayRoot(tools: withSudo ? ["/usr/bin/sudo", "/usr/sbin/visudo"] : [])
        XCTAssertEqual(mkdir(root.path + "/etc/sudoers.d", 0o755), 0)
        try root.write("/etc/sudoers", sudoers, mode: 0o440)
        return root
    }

    func provision(_ root: ThrowawayRoot, _ environment: [String: String]) throws -> Subprocess {
        try root.provision(environment, command: ["/testkit", "ids"])
    }

    func step(_ root: ThrowawayRoot) throws -> [String: Any] {
        try XCTUnwrap(root.provisionedSteps()["sudo"])
    }

    /// Root's, 0440, accepted by this machine's visudo, and alone in
    /// sudoers.d (no candidate left behind).
    func assertRuleIsInstalledAndValid(_ root: ThrowawayRoot, file: StaticString = #filePath, line: UInt = #line) throws {
        let info = try XCTUnwrap(root.status("/etc/sudoers.d/berth"), file: file, line: line)
        XCTAssertEqual(info.st_mode & 0o7777, 0o440, file: file, line: line)
        XCTAssertEqual(info.st_uid, 0, file: file, line: line)
        let check = try Subprocess(["/usr/sbin/visudo", "-c", "-f", root.path + "/etc/sudoers.d/berth"])
        XCTAssertEqual(check.wait(), .exited(0), check.outputText + check.errorText, file: file, line: line)
        XCTAssertEqual(try files(in: root.path + "/etc/sudoers.d"), ["berth"], "no candidate left behind", file: file, line: line)
    }

    func test_on_gives_passwordless_sudo_in_a_checked_rule_and_off_takes_it_away() throws {
        let root = try root()
        let on = try provision(root, ["BERTH_SUDO": "1"])
        XCTAssertEqual(on.status, .exited(0), on.errorText)
        XCTAssertEqual(try step(root)["status"] as? String, "ok")
        XCTAssertEqual(try step(root)["detail"] as? String, "passwordless sudo for dev8")
        let rule = try XCTUnwrap(root.read("/etc/sudoers.d/berth"))
        XCTAssertTrue(rule.hasSuffix("\ndev8 ALL=(ALL:ALL) NOPASSWD: ALL\n"), rule)
        try assertRuleIsInstalledAndValid(root)

        let again = try provision(root, ["BERTH_SUDO": "true"])
        XCTAssertEqual(again.status, .exited(0), again.errorText)
        XCTAssertEqual(root.read("/etc/sudoers.d/berth"), rule)

        let off = try provision(root, ["BERTH_SUDO": "0"])
        XCTAssertEqual(off.status, .exited(0), off.errorText)
        XCTAssertEqual(try step(root)["detail"] as? String, "no sudo rights for dev8")
        XCTAssertNil(root.status("/etc/sudoers.d/berth"))
    }

    func test_packages_allows_only_berth_install_packages_in_a_checked_rule_and_switching_rewrites_or_removes_it() throws {
        let root = try root()
        let packages = try provision(root, ["BERTH_SUDO": "packages"])
        XCTAssertEqual(packages.status, .exited(0), packages.errorText)
        XCTAssertEqual(try step(root)["status"] as? String, "ok")
        XCTAssertEqual(try step(root)["detail"] as? String, "dev8 may install Debian packages: sudo /berth install-packages NAME...")
        let rule = try XCTUnwrap(root.read("/etc/sudoers.d/berth"))
        XCTAssertEqual(rule.split(separator: "\n").filter { !$0.hasPrefix("#") }, [
            "Defaults:dev8 env_reset, secure_path=\"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"",
            "dev8 ALL=(root) NOPASSWD: /berth install-packages *",
        ], rule)
        try assertRuleIsInstalledAndValid(root)

        let everything = try provision(root, ["BERTH_SUDO": "on"])
        XCTAssertEqual(everything.status, .exited(0), everything.errorText)
        XCTAssertTrue(try XCTUnwrap(root.read("/etc/sudoers.d/berth")).hasSuffix("\ndev8 ALL=(ALL:ALL) NOPASSWD: ALL\n"))
        let again = try provision(root, ["BERTH_SUDO": "PACKAGES"])
        XCTAssertEqual(again.status, .exited(0), again.errorText)
        XCTAssertEqual(root.read("/etc/sudoers.d/berth"), rule)
        let off = try provision(root, ["BERTH_SUDO": "off"])
        XCTAssertEqual(off.status, .exited(0), off.errorText)
        XCTAssertEqual(try step(root)["detail"] as? String, "no sudo rights for dev8")
        XCTAssertNil(root.status("/etc/sudoers.d/berth"))
    }

    /// Whoever can replace the binary the rule names owns the rule.
    func test_packages_is_refused_when_berth_could_be_replaced_by_someone_other_than_root() throws {
        let root = try root()
        XCTAssertEqual(chmod(root.path, 0o775), 0)
        let run = try provision(root, ["BERTH_SUDO": "packages"])
        XCTAssertEqual(run.status, .exited(0), run.errorText)
        XCTAssertEqual(try step(root)["status"] as? String, "failed")
        XCTAssertEqual(try step(root)["message"] as? String,
                       "BERTH_SUDO=packages: / is not a directory only root may change, so /berth cannot be sudo's command")
        XCTAssertEqual(try files(in: root.path + "/etc/sudoers.d"), [])
    }

    func test_unset_is_skipped_and_writes_nothing() throws {
        let root = try root()
        let run = try provision(root, ["SSH_PUBLIC_KEY": "not checked here"])
        XCTAssertEqual(run.status, .exited(0), run.errorText)
        XCTAssertEqual(try step(root)["status"] as? String, "skipped")
        XCTAssertEqual(try step(root)["reason"] as? String, "BERTH_SUDO is not set: the workspace user has no sudo rights")
        XCTAssertEqual(try files(in: root.path + "/etc/sudoers.d"), [])
    }

    func test_bad_input_fails_with_the_reason_and_installs_nothing() throws {
        let cases: [(sudoers: String?, sudo: Bool, value: String, error: String)] = [
            (nil, true, "maybe", "BERTH_SUDO='maybe': expected 1/0, true/false, yes/no, on/off or packages"),
            (nil, true, "package", "BERTH_SUDO='package': expected 1/0, true/false, yes/no, on/off or packages"),
            (nil, false, "1", "BERTH_SUDO is on but sudo is not installed (no /usr/bin/sudo)"),
            (nil, false, "packages", "BERTH_SUDO is packages but sudo is not installed (no /usr/bin/sudo)"),
            ("root ALL=(ALL:ALL) ALL\n", true, "packages", "/etc/sudoers does not include /etc/sudoers.d, so berth's rule would not apply"),
            ("root ALL=(ALL:ALL) ALL\n", true, "1", "/etc/sudoers does not include /etc/sudoers.d, so berth's rule would not apply"),
        ]
        for (sudoers, sudo, value, error) in cases {
            let root = try sudoers.map { try self.root(sudoers: $0, withSudo: sudo) } ?? self.root(withSudo: sudo)
            let run = try provision(root, ["BERTH_SUDO": value])
            XCTAssertEqual(run.status, .exited(0), "a failed step does not stop the command unless BERTH_STRICT: \(run.errorText)")
            XCTAssertEqual(try step(root)["status"] as? String, "failed", value)
            XCTAssertEqual(try step(root)["message"] as? String, error)
            XCTAssertTrue(run.errorText.contains(error), run.errorText)
            XCTAssertEqual(try files(in: root.path + "/etc/sudoers.d"), [], value)
        }
    }

    func files(in directory: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
    }
}
