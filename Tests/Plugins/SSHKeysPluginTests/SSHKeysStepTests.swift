import Foundation
import Glibc
@testable import BerthPlugins
import TestSupport
import XCTest

/// ssh-keys end to end: berth as PID 1, chrooted in a throwaway root, with
/// keys made by the real ssh-keygen.
final class SSHKeysStepTests: XCTestCase {
    var keys = ""

    override func setUpWithError() throws {
        keys = "/tmp/berth-keys-\(getpid())-\(Int.random(in: 0..<1_000_000))"
        mkdir(keys, 0o700)
        for (name, type) in [("ed", "ed25519"), ("rsa", "rsa")] {
            let run = try Subprocess(["ssh-keygen", "-q", "-t", type, "-N", "", "-C", "test-\(name)", "-f", "\(keys)/\(name)"])
            XCTAssertEqual(run.wait(), .exited(0), run.errorText)
        }
    }

    override func tearDown() {
        _ = system("rm -rf '\(keys)'")
    }

    func key(_ name: String) -> String { (readText("\(keys)/\(name)") ?? "").trimmingCharacters(in: .newlines) }

    func provision(_ root: ThrowawayRoot, _ environment: [String: String], command: [String] = ["/testkit", "env"]) throws -> Subprocess {
        try root.provision(environment, command: command)
    }

    func report(_ root: ThrowawayRoot) throws -> [String: [String: Any]] {
        try root.provisionedSteps()
    }

    func test_public_keys_land_in_authorized_keys_owned_by_the_user() throws {
        let root = try ThrowawayRoot()
        let run = try provision(root, ["SSH_PUBLIC_KEY": key("ed.pub") + "\n" + key("rsa.pub")])
        XCTAssertEqual(run.status, .exited(0), run.errorText)
        let file = try XCTUnwrap(root.read("/home/dev8/.ssh/authorized_keys"))
        XCTAssertTrue(file.contains(key("ed.pub")) && file.contains(key("rsa.pub")), file)
        let info = try XCTUnwrap(root.status("/home/dev8/.ssh/authorized_keys"))
        XCTAssertEqual(info.st_mode & 0o7777, 0o600)
        XCTAssertEqual(info.st_uid, 1000)
        XCTAssertEqual(info.st_gid, 1000)
        let directory = try XCTUnwrap(root.status("/home/dev8/.ssh"))
        XCTAssertEqual(directory.st_mode & 0o7777, 0o700)
        XCTAssertEqual(directory.st_uid, 1000)
        XCTAssertEqual(try report(root)["ssh-keys"]?["status"] as? String, "ok")
        XCTAssertEqual(try report(root)["ssh-keys"]?["detail"] as? String, "2 authorized keys")
    }

    func test_a_restart_changes_nothing_and_keeps_the_users_own_keys() throws {
        let root = try ThrowawayRoot()
        XCTAssertEqual(try provision(root, ["SSH_PUBLIC_KEY": key("ed.pub")]).status, .exited(0))
        var file = try XCTUnwrap(root.read("/home/dev8/.ssh/authorized_keys"))
        file = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl users-own\n" + file
        try root.write("/home/dev8/.ssh/authorized_keys", file, mode: 0o600)
        chown(root.path + "/home/dev8/.ssh/authorized_keys", 1000, 1000)
        XCTAssertEqual(try provision(root, ["SSH_PUBLIC_KEY": key("ed.pub")]).status, .exited(0))
        let first = root.read("/home/dev8/.ssh/authorized_keys")
        XCTAssertEqual(try provision(root, ["SSH_PUBLIC_KEY": key("ed.pub")]).status, .exited(0))
        XCTAssertEqual(root.read("/home/dev8/.ssh/authorized_keys"), first, "a re-run must write the same file")
        XCTAssertEqual(first?.components(separatedBy: key("ed.pub")).count, 2, "the key appears once")
        XCTAssertTrue(first?.hasPrefix("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl users-own\n") == true)
    }

    func test_a_planted_symlink_or_hard_link_is_neither_followed_nor_copied() throws {
        let root = try ThrowawayRoot()
        try root.write("/etc/shadow", "root:SECRET-HASH:19000::::::\n", mode: 0o600)
        XCTAssertEqual(mkdir(root.path + "/home/dev8/.ssh", 0o700), 0)
        chown(root.path + "/home/dev8/.ssh", 1000, 1000)
        XCTAssertEqual(symlink("/etc/shadow", root.path + "/home/dev8/.ssh/authorized_keys"), 0)
        XCTAssertEqual(try provision(root, ["SSH_PUBLIC_KEY": key("ed.pub")]).status, .exited(0))
        let written = try XCTUnwrap(root.read("/home/dev8/.ssh/authorized_keys"))
        XCTAssertFalse(written.contains("SECRET-HASH"), "root copied the link's target into the user's file")
        XCTAssertEqual(root.read("/etc/shadow"), "root:SECRET-HASH:19000::::::\n")

        // A hard link to a root file: same rule.
        unlink(root.path + "/home/dev8/.ssh/authorized_keys")
        XCTAssertEqual(link(root.path + "/etc/shadow", root.path + "/home/dev8/.ssh/authorized_keys"), 0)
        XCTAssertEqual(try provision(root, ["SSH_PUBLIC_KEY": key("ed.pub")]).status, .exited(0))
        XCTAssertFalse((root.read("/home/dev8/.ssh/authorized_keys") ?? "").contains("SECRET-HASH"))
        XCTAssertEqual(root.read("/etc/shadow"), "root:SECRET-HASH:19000::::::\n")
    }

    func test_a_bad_key_fails_the_step_names_the_line_and_keeps_the_previous_file() throws {
        let root = try ThrowawayRoot()
        XCTAssertEqual(try provision(root, ["SSH_PUBLIC_KEY": key("ed.pub")]).status, .exited(0))
        let before = root.read("/home/dev8/.ssh/authorized_keys")
        let run = try provision(root, ["SSH_PUBLIC_KEY": key("rsa.pub") + "\nssh-rsa not-base64!! x"], command: ["/testkit", "zombies", "0"])
        XCTAssertEqual(run.status, .exited(0), "not strict: the command still runs")
        XCTAssertTrue(run.errorText.contains("SSH_PUBLIC_KEY: line 2 is not an OpenSSH public key"), run.errorText)
        XCTAssertEqual(try report(root)["ssh-keys"]?["status"] as? String, "failed")
        XCTAssertEqual(try report(root)["ssh-keys"]?["message"] as? String, "SSH_PUBLIC_KEY: line 2 is not an OpenSSH public key")
        XCTAssertEqual(root.read("/home/dev8/.ssh/authorized_keys"), before)

        let strict = try provision(root, ["SSH_PUBLIC_KEY": "nonsense", "BERTH_STRICT": "1"], command: ["/testkit", "env"])
        XCTAssertEqual(strict.status, .exited(1))
        XCTAssertEqual(strict.outputText, "", "the command must not start")
    }

    func test_private_key_is_installed_with_its_public_half_and_never_leaks() throws {
        let root = try ThrowawayRoot()
        let secret = key("ed")
        let run = try provision(root, ["SSH_PRIVATE_KEY": secret, "BERTH_VERBOSITY": "3"])
        XCTAssertEqual(run.status, .exited(0), run.errorText)
        XCTAssertEqual(root.read("/home/dev8/.ssh/id_ed25519"), secret + "\n")
        let info = try XCTUnwrap(root.status("/home/dev8/.ssh/id_ed25519"))
        XCTAssertEqual(info.st_mode & 0o7777, 0o600)
        XCTAssertEqual(info.st_uid, 1000)
        let derived = try XCTUnwrap(root.read("/home/dev8/.ssh/id_ed25519.pub"))
        let expected = key("ed.pub").split(separator: " ").prefix(2).joined(separator: " ")
        XCTAssertTrue(derived.hasPrefix(expected + " "), "\(derived) vs \(expected)")
        // The key reached neither berth's output nor the command's environment.
        let body = secret.split(separator: "\n")[1]
        XCTAssertFalse(run.errorText.contains(body))
        XCTAssertFalse(run.outputText.contains(body))
        XCTAssertTrue(run.outputText.contains("\nPATH=") || run.outputText.hasPrefix("PATH="), "the command ran and printed its environment: \(run.outputText)")
        XCTAssertFalse(run.outputText.contains("SSH_PRIVATE_KEY="), run.outputText)
    }

    func test_key_files_are_read_from_the_file_variants() throws {
        let root = try ThrowawayRoot()
        try root.write("/secrets/authorized", key("ed.pub") + "\n", mode: 0o600)
        try root.write("/secrets/private", key("rsa") + "\n", mode: 0o600)
        let run = try provision(root, ["SSH_PUBLIC_KEY_FILE": "/secrets/authorized", "SSH_PRIVATE_KEY_FILE": "/secrets/private"])
        XCTAssertEqual(run.status, .exited(0), run.errorText)
        XCTAssertTrue(root.read("/home/dev8/.ssh/authorized_keys")?.contains(key("ed.pub")) == true)
        XCTAssertEqual(root.read("/home/dev8/.ssh/id_rsa"), key("rsa") + "\n")
        let missing = try provision(root, ["SSH_PUBLIC_KEY_FILE": "/secrets/nope"])
        XCTAssertTrue(missing.errorText.contains("SSH_PUBLIC_KEY_FILE=/secrets/nope: cannot read: No such file or directory"), missing.errorText)
    }

    func test_without_inputs_berth_is_a_plain_init_and_writes_nothing() throws {
        let root = try ThrowawayRoot()
        let run = try provision(root, [:])
        XCTAssertEqual(run.status, .exited(0))
        XCTAssertNil(root.status("/run/berth/provision.json"))
        XCTAssertNil(root.status("/home/dev8/.ssh"))
        XCTAssertEqual(run.errorText, "")
    }

    func test_disabled_step_is_reported_and_unknown_names_are_rejected() throws {
        let root = try ThrowawayRoot()
        let unknown = try provision(root, ["BERTH_DISABLE": "ssh-kees", "SSH_PUBLIC_KEY": key("ed.pub")])
        XCTAssertEqual(unknown.status, .exited(2))
        XCTAssertTrue(unknown.errorText.contains("BERTH_DISABLE: unknown step 'ssh-kees'"), unknown.errorText)
    }

    func test_authorized_key_validation_checks_the_blob_type() {
        XCTAssertNotNil(OpenSSHKeys.validateAuthorizedKey(Substring(key("ed.pub"))))
        XCTAssertNotNil(OpenSSHKeys.validateAuthorizedKey(Substring("no-pty,command=\"x\" " + key("ed.pub"))))
        let edBlob = key("ed.pub").split(separator: " ")[1]
        XCTAssertNil(OpenSSHKeys.validateAuthorizedKey(Substring("ssh-rsa \(edBlob) lying-type")))
        XCTAssertNil(OpenSSHKeys.validateAuthorizedKey("ssh-ed25519"))
        XCTAssertNil(OpenSSHKeys.validateAuthorizedKey("hello world"))
    }
}

/// `berth provision [--only STEP]`: provisioning on demand, no command.
final class ProvisionCommandTests: XCTestCase {
    func provision(_ root: ThrowawayRoot, _ arguments: [String], _ environment: [String: String]) throws -> Subprocess {
        let run = try Subprocess(["/usr/sbin/chroot", root.path, "/berth", "provision"] + arguments, environment: environment)
        run.wait(timeout: 30)
        return run
    }

    func test_provision_runs_the_steps_again_and_its_status_says_whether_one_failed() throws {
        let root = try ThrowawayRoot()
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl on-demand"
        let ok = try provision(root, [], ["SSH_PUBLIC_KEY": key])
        XCTAssertEqual(ok.status, .exited(0), ok.errorText)
        XCTAssertTrue(root.read("/home/dev8/.ssh/authorized_keys")?.contains(key) == true)

        let only = try provision(root, ["--only", "ssh-keys"], ["SSH_PUBLIC_KEY": key])
        XCTAssertEqual(only.status, .exited(0), only.errorText)
        XCTAssertTrue(root.read("/run/berth/provision.json")?.contains("not selected (--only ssh-keys)") == true)

        let bad = try provision(root, [], ["SSH_PUBLIC_KEY": "not a key"])
        XCTAssertEqual(bad.status, .exited(1))
        XCTAssertTrue(root.read("/home/dev8/.ssh/authorized_keys")?.contains(key) == true, "the previous file stays")

        let unknown = try provision(root, ["--only", "nope"], ["SSH_PUBLIC_KEY": key])
        XCTAssertEqual(unknown.status, .exited(2))
        XCTAssertTrue(unknown.errorText.contains("--only 'nope': unknown step"), unknown.errorText)

        let nothing = try provision(root, [], [:])
        XCTAssertEqual(nothing.status, .exited(0))
        XCTAssertTrue(nothing.errorText.contains("nothing to provision"), nothing.errorText)
    }
}
