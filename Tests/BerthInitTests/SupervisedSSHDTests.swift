import Foundation
import Glibc
import TestSupport
import XCTest

/// The built-in sshd service: berth provisions a throwaway root, starts
/// Debian's sshd as its child, and restarts it when it dies; the test logs
/// in with a key over loopback.
final class SupervisedSSHDTests: XCTestCase {
    var keys = ""
    let port = String(Int.random(in: 30_000..<40_000))

    override func setUpWithError() throws {
        keys = "/tmp/berth-supervised-keys-\(getpid())-\(Int.random(in: 0..<1_000_000))"
        mkdir(keys, 0o700)
        let run = try Subprocess(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "login", "-f", "\(keys)/id"])
        XCTAssertEqual(run.wait(), .exited(0), run.errorText)
    }

    override func tearDown() {
        _ = system("rm -rf '\(keys)'")
    }

    func ssh(_ command: String) throws -> Subprocess {
        let run = try Subprocess(["ssh", "-i", "\(keys)/id", "-p", port, "-o", "StrictHostKeyChecking=no",
                                  "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
                                  "-o", "LogLevel=ERROR", "dev8@127.0.0.1", command])
        run.wait(timeout: 20)
        return run
    }

    /// Reads berth's stderr until `needle` shows up (bounded).
    func waitFor(_ needle: String, in run: Subprocess, seconds: Double = 20) -> Bool {
        let deadline = now() + seconds
        while !run.errorText.contains(needle), now() < deadline { _ = run.readLine(timeout: 0.1) }
        return run.errorText.contains(needle)
    }

    func test_sshd_runs_as_a_service_is_restarted_when_it_dies_and_stops_with_the_container() throws {
        let root = try ThrowawayRoot(withSSH: true)
        let publicKey = (readText("\(keys)/id.pub") ?? "").trimmingCharacters(in: .newlines)
        let run = try root.berth([], environment: ["PATH": "/usr/bin:/bin", "SSH_PUBLIC_KEY": publicKey, "SSH_PORT": port])
        XCTAssertTrue(waitFor("berth: sshd: ready", in: run), run.errorText)
        let login = try ssh("/testkit zombies 0")
        XCTAssertEqual(login.status, .exited(0), login.errorText + run.errorText)
        XCTAssertEqual(login.outputText, "zombies 0\n")

        // The old entrypoint never restarted a crashed sshd.
        let started = run.errorText.components(separatedBy: "berth: sshd: started (pid ").count - 1
        // sshd retitles itself ("sshd: /usr/sbin/sshd -D -e [listener] ..."):
        // find the listener whose root is our throwaway root.
        let listing = try Subprocess(["pgrep", "-f", "sshd -D -e \\[listener\\]"], environment: ["PATH": "/usr/bin:/bin"])
        listing.wait()
        let sshdPID = try XCTUnwrap(listing.outputText.split(separator: "\n").compactMap { pid_t($0) }.first { pid in
            var buffer = [CChar](repeating: 0, count: 4096)
            let length = readlink("/proc/\(pid)/root", &buffer, buffer.count - 1)
            return length > 0 && String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self) == root.path
        }, "sshd's pid: \(listing.outputText)")
        kill(sshdPID, SIGKILL)
        XCTAssertTrue(waitFor("berth: sshd: killed by SIGKILL", in: run), run.errorText)
        let deadline = now() + 20
        while run.errorText.components(separatedBy: "berth: sshd: ready").count - 1 < 2, now() < deadline { _ = run.readLine(timeout: 0.1) }
        XCTAssertEqual(run.errorText.components(separatedBy: "berth: sshd: started (pid ").count - 1, started + 1, run.errorText)
        XCTAssertEqual(try ssh("/testkit zombies 0").status, .exited(0), "logins work again after the restart")

        let berth = try XCTUnwrap(childOf(run.pid))
        let stopping = now()
        kill(berth, SIGTERM)
        XCTAssertEqual(run.wait(timeout: 15), .exited(0), run.errorText)
        XCTAssertLessThan(now() - stopping, 8, "inside docker stop's 10 s")
        XCTAssertTrue(run.errorText.contains("berth: sshd: stopped"), run.errorText)
    }
}
