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
        // The image's own sshd_config names a port, as the original
        // images' `Port 2222` does: SSH_PORT still decides (sshd's -p).
        let imagePort = String(Int.random(in: 40_000..<50_000))
        try root.write("/etc/ssh/sshd_config", "Include /etc/ssh/sshd_config.d/*.conf\nUsePAM no\nSubsystem sftp internal-sftp\nPort \(imagePort)\n")
        let publicKey = (readText("\(keys)/id.pub") ?? "").trimmingCharacters(in: .newlines)
        let run = try root.berth([], environment: ["PATH": "/usr/bin:/bin", "SSH_PUBLIC_KEY": publicKey, "SSH_PORT": port])
        XCTAssertTrue(waitFor("berth: sshd: ready", in: run), run.errorText)
        let login = try ssh("/testkit zombies 0")
        XCTAssertEqual(login.status, .exited(0), login.errorText + run.errorText)
        XCTAssertEqual(login.outputText, "zombies 0\n")
        // Listening sockets (state 0A) by local port, from the kernel's tables.
        let tables = try XCTUnwrap(readText("/proc/net/tcp"), "/proc/net/tcp") + (readText("/proc/net/tcp6") ?? "")
        let listening = Set(tables.split(separator: "\n").compactMap { line -> Int? in
            let fields = line.split(separator: " ")
            guard fields.count > 3, fields[3] == "0A", let colon = fields[1].lastIndex(of: ":") else { return nil }
            return Int(fields[1][fields[1].index(after: colon)...], radix: 16)
        })
        XCTAssertTrue(listening.contains(Int(port)!), "sshd listens on SSH_PORT \(port): \(listening.sorted())")
        XCTAssertFalse(listening.contains(Int(imagePort)!), "nothing listens on sshd_config's own Port \(imagePort)")

        // The old entrypoint never restarted a crashed sshd.
        let started = run.errorText.components(separatedBy: "berth: sshd: started (pid ").count - 1
        // sshd retitles itself ("sshd: /usr/sbin/sshd -D -e [listener] ..."):
        // find the listener whose root is our throwaway root.
        let listing = try Subprocess(["pgrep", "-f", "sshd -D -e -p \(port) \\[listener\\]"], environment: ["PATH": "/usr/bin:/bin"])
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
