import Foundation
import Glibc
import TestSupport
import XCTest

/// sshd end to end with Debian's real sshd and ssh: berth provisions a
/// throwaway root, then runs sshd there; the test logs in over loopback.
final class SSHDStepTests: XCTestCase {
    var keys = ""

    override func setUpWithError() throws {
        keys = "/tmp/berth-sshd-keys-\(getpid())-\(Int.random(in: 0..<1_000_000))"
        mkdir(keys, 0o700)
        let run = try Subprocess(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "login", "-f", "\(keys)/id"])
        XCTAssertEqual(run.wait(), .exited(0), run.errorText)
    }

    override func tearDown() {
        _ = system("rm -rf '\(keys)'")
    }

    var publicKey: String { (readText("\(keys)/id.pub") ?? "").trimmingCharacters(in: .newlines) }
    let port = String(Int.random(in: 20_000..<30_000))

    func steps(_ root: ThrowawayRoot) throws -> [String: [String: Any]] {
        try root.provisionedSteps()
    }

    func ssh(_ user: String, _ command: String, extra: [String] = []) throws -> Subprocess {
        let run = try Subprocess(["ssh", "-i", "\(keys)/id", "-p", port, "-o", "StrictHostKeyChecking=no",
                                  "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
                                  "-o", "LogLevel=ERROR"] + extra + ["\(user)@127.0.0.1", command])
        run.wait(timeout: 20)
        return run
    }

    func test_hardened_config_and_host_keys_then_a_real_key_login() throws {
        let root = try ThrowawayRoot(withSSH: true)
        // sshd as the command needs root: the command runs as the workspace user otherwise.
        let server = try root.berth(["--", "/usr/sbin/sshd", "-D", "-e", "-p", port], environment: ["SSHD_ENABLED": "0", "SSH_PUBLIC_KEY": publicKey, "SSH_PORT": port,
                                                                                    "BERTH_COMMAND_USER": "root"])
        defer {
            // docker stop, in effect: SIGTERM to berth, which stops sshd.
            if let berth = childOf(server.pid) { kill(berth, SIGTERM) }
            XCTAssertEqual(server.wait(timeout: 10), .exited(0), "berth should exit with sshd's status")
        }

        // Wait for sshd to listen, then log in with the key.
        var login: Subprocess?
        let deadline = now() + 15
        while now() < deadline {
            let attempt = try ssh("dev8", "/testkit zombies 0")
            if attempt.status == .exited(0) {
                login = attempt
                break
            }
            usleep(200_000)
        }
        let session = try XCTUnwrap(login, "no key login: \(server.errorText)")
        XCTAssertEqual(session.outputText, "zombies 0\n")

        let config = try XCTUnwrap(root.read("/etc/ssh/sshd_config.d/berth.conf"))
        for setting in ["HostKey /etc/ssh/ssh_host_ed25519_key\nHostKey /etc/ssh/ssh_host_ecdsa_key", "PermitRootLogin no", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
                        "PubkeyAuthentication yes", "MaxAuthTries 3", "AllowUsers dev8", "X11Forwarding no", "ClientAliveInterval 60"] {
            XCTAssertTrue(config.contains(setting + "\n"), "missing \(setting)")
        }
        XCTAssertFalse(config.contains("\nPort "), "the port is sshd's -p, not a drop-in line: \(config)")
        for type in ["ed25519", "ecdsa"] {
            let key = try XCTUnwrap(root.status("/etc/ssh/ssh_host_\(type)_key"), type)
            XCTAssertEqual(key.st_mode & 0o7777, 0o600)
            XCTAssertNotNil(root.status("/etc/ssh/ssh_host_\(type)_key.pub"))
        }
        XCTAssertNil(root.status("/etc/ssh/ssh_host_rsa_key"), "RSA only when asked for")
        XCTAssertEqual(try steps(root)["sshd"]?["detail"] as? String, "port \(port), host keys generated: ed25519, ecdsa")

        // Root with an authorized key, and passwords, are refused.
        XCTAssertEqual(system("mkdir -p '\(root.path)/root/.ssh' && cp '\(keys)/id.pub' '\(root.path)/root/.ssh/authorized_keys'"), 0)
        XCTAssertNotEqual(try ssh("root", "true").status, .exited(0))
        let password = try ssh("dev8", "true", extra: ["-o", "PreferredAuthentications=password,keyboard-interactive", "-o", "PubkeyAuthentication=no"])
        XCTAssertNotEqual(password.status, .exited(0))
        XCTAssertTrue(password.errorText.contains("Permission denied"), password.errorText)
    }

    func test_each_container_gets_its_own_host_keys_and_a_restart_keeps_them() throws {
        let first = try ThrowawayRoot(withSSH: true)
        let second = try ThrowawayRoot(withSSH: true)
        for root in [first, second] {
            let run = try root.berth(["--", "/testkit", "zombies", "0"], environment: ["SSHD_ENABLED": "0", "SSH_PUBLIC_KEY": publicKey])
            XCTAssertEqual(run.wait(timeout: 60), .exited(0), run.errorText)
        }
        let key = "/etc/ssh/ssh_host_ed25519_key.pub"
        XCTAssertNotNil(first.read(key))
        XCTAssertNotEqual(first.read(key), second.read(key))

        let before = first.read(key)
        let again = try first.berth(["--", "/testkit", "zombies", "0"], environment: ["SSHD_ENABLED": "0", "SSH_PUBLIC_KEY": publicKey])
        XCTAssertEqual(again.wait(timeout: 60), .exited(0))
        XCTAssertEqual(first.read(key), before)
        XCTAssertEqual(try steps(first)["sshd"]?["detail"] as? String, "port 2222, host keys kept")
    }

    func test_an_rsa_host_key_when_asked_for_is_what_an_rsa_only_client_gets() throws {
        let root = try ThrowawayRoot(withSSH: true)
        let server = try root.berth(["--", "/usr/sbin/sshd", "-D", "-e", "-p", port], environment: [
            "BERTH_COMMAND_USER": "root",
            "SSHD_ENABLED": "0", "SSH_PUBLIC_KEY": publicKey, "SSH_PORT": port, "SSH_HOST_KEY_TYPES": "rsa, ed25519,rsa",
        ])
        defer {
            if let berth = childOf(server.pid) { kill(berth, SIGTERM) }
            XCTAssertEqual(server.wait(timeout: 10), .exited(0))
        }
        var login: Subprocess?
        let deadline = now() + 15
        while now() < deadline {
            let attempt = try ssh("dev8", "/testkit zombies 0", extra: ["-o", "HostKeyAlgorithms=rsa-sha2-512"])
            if attempt.status == .exited(0) {
                login = attempt
                break
            }
            usleep(200_000)
        }
        XCTAssertNotNil(login, "no login with an RSA host key: \(server.errorText)")
        XCTAssertEqual(try steps(root)["sshd"]?["detail"] as? String, "port \(port), host keys generated: rsa, ed25519")
        XCTAssertTrue(try XCTUnwrap(root.read("/etc/ssh/sshd_config.d/berth.conf")).contains("HostKey /etc/ssh/ssh_host_rsa_key\nHostKey /etc/ssh/ssh_host_ed25519_key\nPermitRootLogin"))
        XCTAssertNil(root.status("/etc/ssh/ssh_host_ecdsa_key"))
    }

    func test_an_unknown_host_key_type_fails_the_step_and_installs_nothing() throws {
        let root = try ThrowawayRoot(withSSH: true)
        let run = try root.berth(["--", "/testkit", "zombies", "0"], environment: ["SSHD_ENABLED": "0", "SSH_PUBLIC_KEY": publicKey, "SSH_HOST_KEY_TYPES": "ed25519,dsa"])
        XCTAssertEqual(run.wait(timeout: 60), .exited(0))
        XCTAssertEqual(try steps(root)["sshd"]?["message"] as? String, "SSH_HOST_KEY_TYPES: unknown key type 'dsa' (known: ed25519, ecdsa, rsa)")
        XCTAssertNil(root.status("/etc/ssh/sshd_config.d/berth.conf"))
        XCTAssertNil(root.status("/etc/ssh/ssh_host_ed25519_key"))
    }

    func test_a_bad_port_fails_the_step_and_installs_nothing() throws {
        let root = try ThrowawayRoot(withSSH: true)
        let run = try root.berth(["--", "/testkit", "zombies", "0"], environment: ["SSHD_ENABLED": "0", "SSH_PUBLIC_KEY": publicKey, "SSH_PORT": "70000"])
        XCTAssertEqual(run.wait(timeout: 60), .exited(0))
        XCTAssertEqual(try steps(root)["sshd"]?["message"] as? String, "SSH_PORT='70000': expected a port number from 1 to 65535")
        XCTAssertNil(root.status("/etc/ssh/sshd_config.d/berth.conf"))
    }

    func test_a_config_sshd_rejects_is_never_installed() throws {
        let root = try ThrowawayRoot(withSSH: true)
        // A user name sshd cannot parse in AllowUsers would do; simplest is
        // a broken main config the candidate is checked together with.
        try root.write("/etc/ssh/sshd_config", "Include /etc/ssh/sshd_config.d/*.conf\nUsePAM no\nNoSuchKeyword yes\n")
        let run = try root.berth(["--", "/testkit", "zombies", "0"], environment: ["SSHD_ENABLED": "0", "SSH_PUBLIC_KEY": publicKey])
        XCTAssertEqual(run.wait(timeout: 60), .exited(0))
        let message = try XCTUnwrap(steps(root)["sshd"]?["message"] as? String)
        XCTAssertTrue(message.hasPrefix("sshd -t rejected the configuration"), message)
        XCTAssertNil(root.status("/etc/ssh/sshd_config.d/berth.conf"))
        XCTAssertNil(root.status("/etc/ssh/sshd_config.d/.berth.conf.candidate"))
    }

    func test_without_openssh_server_the_step_is_skipped_with_the_reason() throws {
        let root = try ThrowawayRoot()
        let run = try root.berth(["--", "/testkit", "zombies", "0"], environment: ["SSHD_ENABLED": "0", "SSH_PUBLIC_KEY": publicKey])
        XCTAssertEqual(run.wait(timeout: 60), .exited(0))
        XCTAssertEqual(try steps(root)["sshd"]?["reason"] as? String, "openssh-server is not installed (no /usr/sbin/sshd)")
    }
}
