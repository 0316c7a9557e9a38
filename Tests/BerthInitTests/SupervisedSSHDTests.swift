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

    /// docker stop: the command, then the user's services, then the
    /// workspace supervisor with its budget for a last backup (a login
    /// still works meanwhile), then sshd; inside BERTH_SHUTDOWN_TIMEOUT.
    func test_at_shutdown_the_supervisor_stops_after_the_users_services_and_before_sshd_within_its_budget() throws {
        let root = try ThrowawayRoot(withSSH: true)
        XCTAssertEqual(system("mkdir -p '\(root.path)/etc/berth/services.d' '\(root.path)/usr/bin'"), 0)
        try root.write("/etc/berth/services.d/editor.toml", """
        command = ["/testkit", "print-signals", "15", "60"]
        """)
        // Stands in for the supervisor: its last backup takes 3 s.
        try root.write("/usr/bin/workspace-supervisor", """
        #!/bin/sh
        trap '' TERM
        echo "budget=$SUPERVISOR_BACKUP_SHUTDOWN_BUDGET"
        /testkit print-signals 15 60 > /dev/null
        echo "last backup"
        /testkit print-signals 99 3 > /dev/null
        echo "last backup done"

        """, mode: 0o755)
        let publicKey = (readText("\(keys)/id.pub") ?? "").trimmingCharacters(in: .newlines)
        let run = try root.berth([], environment: ["PATH": "/usr/bin:/bin", "SSH_PUBLIC_KEY": publicKey, "SSH_PORT": port,
                                                   "BERTH_SHUTDOWN_TIMEOUT": "8"], oneStream: true)
        func waitForOutput(_ needle: String) -> Bool {
            let deadline = now() + 20
            while !run.outputText.contains(needle), now() < deadline { _ = run.readLine(timeout: 0.1) }
            return run.outputText.contains(needle)
        }
        XCTAssertTrue(waitForOutput("berth: sshd: ready") && waitForOutput("workspace-supervisor | budget="), run.outputText)
        XCTAssertTrue(run.outputText.contains("workspace-supervisor | budget=5000ms"), "BERTH_SHUTDOWN_TIMEOUT less 3 s: \(run.outputText)")
        let berth = try XCTUnwrap(childOf(run.pid))
        let stopping = now()
        kill(berth, SIGTERM)
        XCTAssertTrue(waitForOutput("workspace-supervisor | last backup\n"), run.outputText)
        let login = try ssh("echo still-there")
        XCTAssertEqual(login.outputText, "still-there\n", "sshd outlives the supervisor's last backup: \(login.errorText)")
        XCTAssertEqual(run.wait(timeout: 15), .exited(0), run.outputText)
        XCTAssertLessThan(now() - stopping, 8, "inside BERTH_SHUTDOWN_TIMEOUT and docker stop's 10 s")
        let lines = run.outputText.split(separator: "\n").map(String.init)
        func position(_ needle: String) throws -> Int { try XCTUnwrap(lines.firstIndex { $0.contains(needle) }, "\(needle): \(run.outputText)") }
        let editorStopped = try position("berth: editor: stopped")
        let lastBackup = try position("workspace-supervisor | last backup")
        let backupDone = try position("workspace-supervisor | last backup done")
        let supervisorStopped = try position("berth: workspace-supervisor: stopped (exited with status 0)")
        let sshdStopped = try position("berth: sshd: stopped")
        XCTAssertEqual([editorStopped, lastBackup, backupDone, supervisorStopped, sshdStopped].sorted(),
                       [editorStopped, lastBackup, backupDone, supervisorStopped, sshdStopped], run.outputText)
        XCTAssertFalse(run.outputText.contains("SIGKILL"), "its grace covers the budget: \(run.outputText)")
    }
}
