import BerthCore
import Foundation
import Glibc
import TestSupport
import XCTest

/// Supervision end to end: berth as PID 1 of a fresh PID namespace running
/// services from a services.d directory, as the container would.
final class SupervisorTests: ServicesDirectoryTestCase {
    func berth(_ command: [String], _ extra: [String: String] = [:]) throws -> Subprocess {
        let environment = servicesEnvironment(extra)
        return try Subprocess(asPID1(command.isEmpty ? [] : ["--"] + command), environment: environment)
    }

    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = in_addr_t(UInt32(0x7f00_0001).bigEndian)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// berth with its stderr on its stdout: one pipe, so the order of the
    /// lines is the order of the writes (berth's log, the services', the
    /// command's), whoever wrote them.
    func berthInOneStream(_ command: [String]) throws -> Subprocess {
        let environment = servicesEnvironment()
        return try Subprocess(["/bin/sh", "-c", "exec \"$@\" 2>&1", "sh"] + asPID1(["--"] + command), environment: environment)
    }

    /// Lines of berth's stderr (its own log) in order.
    func log(_ run: Subprocess) -> [String] {
        run.errorText.split(separator: "\n").map(String.init)
    }

    func index(of needle: String, in lines: [String]) -> Int? {
        lines.firstIndex { $0.contains(needle) }
    }

    func test_a_service_starts_only_once_its_dependency_accepts_connections_and_the_command_last() throws {
        let port = Self.freePort()
        // The web server needs a moment before it listens: the dependent
        // must not start in that moment.
        try service("web", """
        command = ["/bin/sh", "-c", "sleep 0.7; exec /usr/bin/python3 -m http.server \(port) --bind 127.0.0.1"]
        [readiness]
        tcp = \(port)
        """)
        // Ready by a probe command: once it has said hello, a moment later
        // (a command that did not wait for it would run in that moment).
        try service("worker", """
        command = ["/bin/sh", "-c", "echo worker-up; sleep 0.3; touch \(directory)/worker-up; exec sleep 30"]
        depends_on = ["web"]
        [readiness]
        command = ["/bin/sh", "-c", "test -f \(directory)/worker-up"]
        """)
        // berth's log, the services' and the command's output in one stream.
        let run = try berthInOneStream(["/bin/sh", "-c", "echo command-ran"])
        XCTAssertEqual(run.wait(timeout: 30), .exited(0), run.outputText)
        let lines = run.outputText.split(separator: "\n").map(String.init)
        let webReady = try XCTUnwrap(index(of: "berth: web: ready", in: lines), run.outputText)
        let workerStarted = try XCTUnwrap(index(of: "berth: worker: started", in: lines), run.outputText)
        XCTAssertLessThan(webReady, workerStarted)
        XCTAssertTrue(lines.contains("worker | worker-up"), run.outputText)
        // The command last: after both services were ready.
        let workerReady = try XCTUnwrap(index(of: "berth: worker: ready", in: lines), run.outputText)
        let command = try XCTUnwrap(lines.firstIndex(of: "command-ran"), run.outputText)
        XCTAssertLessThan(workerReady, command, "the command started before the last service was ready: \(lines)")
        // Stopped in reverse order once the command exited.
        let workerStopped = try XCTUnwrap(index(of: "berth: worker: stopped", in: lines), run.outputText)
        let webStopped = try XCTUnwrap(index(of: "berth: web: stopped", in: lines), run.outputText)
        XCTAssertLessThan(command, workerStopped)
        XCTAssertLessThan(workerStopped, webStopped)
    }

    func test_sd_notify_ready_gates_the_command_and_status_is_logged() throws {
        // The service appends its line to a shared file before it sends
        // READY=1 (after a moment a command that did not wait would use),
        // and the command appends its own: their order in that one file is
        // the order of the two writes.
        let order = directory + "/order"
        try service("notifier", """
        command = ["/usr/bin/python3", "-c", "import os,socket,time; time.sleep(0.5); s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.sendto(b'STATUS=warming up', os.environ['NOTIFY_SOCKET']); f=open('\(order)', 'a'); f.write('service-sends-ready\\\\n'); f.close(); s.sendto(b'READY=1\\\\nSTATUS=serving', os.environ['NOTIFY_SOCKET']); time.sleep(30)"]
        [readiness]
        notify = true
        """)
        let run = try berthInOneStream(["/bin/sh", "-c", "echo command-ran; echo command-ran >> \(order)"])
        XCTAssertEqual(run.wait(timeout: 30), .exited(0), run.outputText)
        XCTAssertEqual(readText(order), "service-sends-ready\ncommand-ran\n", "the command ran only after the service sent READY=1")
        let lines = run.outputText.split(separator: "\n").map(String.init)
        let ready = try XCTUnwrap(index(of: "berth: notifier: ready", in: lines), run.outputText)
        let warming = try XCTUnwrap(index(of: "berth: notifier: warming up", in: lines), run.outputText)
        let command = try XCTUnwrap(lines.firstIndex(of: "command-ran"), run.outputText)
        XCTAssertLessThan(warming, ready, "STATUS= logged as it came: \(lines)")
        XCTAssertLessThan(ready, command, "berth logged the service ready before the command's first line: \(lines)")
    }

    func test_a_crashing_service_backs_off_exponentially_then_fails_without_taking_the_container_down() throws {
        try service("crasher", """
        command = ["/bin/sh", "-c", "date +%s.%N; exit 3"]
        restart = "on-failure"
        backoff_base = 0.2
        crash_limit = 5
        required = false
        """)
        let run = try berth([])
        let berthPID = try XCTUnwrap(childOf(run.pid))
        var times: [Double] = []
        let deadline = now() + 20
        while times.count < 5, now() < deadline, let line = run.readLine(timeout: 20) {
            if line.hasPrefix("crasher | "), let time = Double(line.dropFirst("crasher | ".count)) { times.append(time) }
        }
        XCTAssertEqual(times.count, 5, run.errorText)
        let gaps = zip(times.dropFirst(), times).map { $0 - $1 }
        // 0.2, 0.4, 0.8, 1.6 s, each ±20 %, plus the start-up of sh.
        for (index, gap) in gaps.enumerated() {
            let expected = 0.2 * pow(2, Double(index))
            XCTAssertGreaterThan(gap, expected * 0.75, "gap \(index): \(gaps)")
            XCTAssertLessThan(gap, expected * 1.25 + 0.3, "gap \(index): \(gaps)")
        }
        // Failed for good after 5 runs; berth keeps running (not critical).
        let waitUntil = now() + 5
        while !run.errorText.contains("crasher: failed"), now() < waitUntil { _ = run.readLine(timeout: 0.1) }
        XCTAssertTrue(run.errorText.contains("berth: crasher: failed: 5 failed runs within 60 s"), run.errorText)
        // After the failure was logged: berth is still there a second later
        // and still answers on its control socket, with the service failed.
        XCTAssertNil(run.exitStatus(within: 1), "berth exited after a non-critical service failed for good: \(run.errorText)")
        let status = try Subprocess([Built.berth, "status", "--json"], environment: servicesEnvironment())
        XCTAssertEqual(status.wait(timeout: 10), .exited(0), "berth status: \(status.errorText)")
        let services = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(status.outputText.utf8)) as? [[String: Any]], status.outputText)
        XCTAssertEqual(services.count, 1, status.outputText)
        XCTAssertEqual(services.first?["name"] as? String, "crasher", status.outputText)
        XCTAssertEqual(services.first?["state"] as? String, "failed", status.outputText)
        kill(berthPID, SIGTERM)
        XCTAssertEqual(run.wait(timeout: 10), .exited(0), "a requested stop of a service-only container is a clean exit")
    }

    func test_a_critical_service_failing_for_good_stops_the_command_and_the_container() throws {
        try service("vital", """
        command = ["/bin/sh", "-c", "exit 1"]
        restart = "on-failure"
        backoff_base = 0.05
        crash_limit = 3
        critical = true
        required = false
        """)
        let run = try berth([Built.testkit, "print-signals", "\(SIGTERM)", "30"])
        XCTAssertEqual(run.wait(timeout: 20), .exited(1), run.errorText)
        XCTAssertTrue(run.errorText.contains("critical service vital failed: 3 failed runs"), run.errorText)
        XCTAssertTrue(run.outputText.contains("\(SIGTERM)\n"), "the command got SIGTERM: \(run.outputText)")
    }

    func test_a_service_that_ignores_its_stop_signal_is_killed_after_its_grace() throws {
        try service("stubborn", """
        command = ["/bin/sh", "-c", "trap '' TERM; echo up; while :; do sleep 0.1; done"]
        stop_grace = 0.5
        """)
        let run = try berth([])
        XCTAssertEqual(run.readLine(timeout: 10), "stubborn | up")
        let berthPID = try XCTUnwrap(childOf(run.pid))
        let started = now()
        kill(berthPID, SIGTERM)
        // An impatient second SIGTERM neither skips the grace nor ends berth early.
        usleep(100_000)
        kill(berthPID, SIGTERM)
        XCTAssertEqual(run.wait(timeout: 10), .exited(0), run.errorText)
        let took = now() - started
        XCTAssertGreaterThan(took, 0.45)
        XCTAssertLessThan(took, 3)
        XCTAssertTrue(run.errorText.contains("berth: stubborn: still running 500 ms after SIGTERM; SIGKILL"), run.errorText)
    }

    func test_docker_stop_finishes_within_the_shutdown_timeout_whatever_the_graces() throws {
        try service("slow", """
        command = ["/bin/sh", "-c", "trap '' TERM; echo up; while :; do sleep 0.1; done"]
        stop_grace = 30
        """)
        let run = try berth([], ["BERTH_SHUTDOWN_TIMEOUT": "1"])
        XCTAssertEqual(run.readLine(timeout: 10), "slow | up")
        let berthPID = try XCTUnwrap(childOf(run.pid))
        let started = now()
        kill(berthPID, SIGTERM)
        XCTAssertEqual(run.wait(timeout: 10), .exited(0), "a requested stop is a clean exit, bounded or not: \(run.errorText)")
        XCTAssertLessThan(now() - started, 2.5)
        XCTAssertTrue(run.errorText.contains("shutdown took longer than 1 s"), run.errorText)
    }

    func test_a_flood_of_output_never_delays_signal_forwarding() throws {
        // 100-byte lines as fast as the pipe takes them until berth stops
        // it. The test reads berth's output only now and then, so berth's
        // buffer fills and it must drop lines rather than wait.
        try service("flood", """
        command = ["/usr/bin/yes", "\(String(repeating: "a", count: 99))"]
        restart = "never"
        required = false
        """)
        let signals = directory + "/signals"
        let run = try berth(["/bin/sh", "-c", "exec \(Built.testkit) print-signals \(SIGTERM) 60 > \(signals)"])
        let berthPID = try XCTUnwrap(childOf(run.pid))
        func signalLines() -> [String] { (readText(signals) ?? "").split(separator: "\n").map(String.init) }
        let ready = now() + 10
        while signalLines().isEmpty, now() < ready { _ = run.readLine(timeout: 0.01) }
        XCTAssertEqual(signalLines().first?.hasPrefix("ready"), true, "the command started")
        // Long enough for the flood to pass berth's 1 MiB backlog many times over.
        usleep(300_000)
        var slowest = 0.0
        for round in 1...20 {
            let sent = now()
            kill(berthPID, SIGUSR1)
            let deadline = sent + 5
            while signalLines().count < round + 1, now() < deadline { usleep(200) }
            slowest = max(slowest, now() - sent)
            _ = run.readLine(timeout: 0.01)
        }
        let stillFlooding = try Subprocess(["pgrep", "-x", "yes"], environment: ["PATH": "/usr/bin:/bin"])
        XCTAssertEqual(stillFlooding.wait(), .exited(0), "the flood was still running when the last signal went")
        XCTAssertEqual(signalLines().count, 21, "every signal arrived")
        XCTAssertLessThan(slowest, 0.5, "forwarded within half a second while the flood flowed")
        let status = readText("/proc/\(berthPID)/status") ?? ""
        let peak = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") }.flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true)[1]) } ?? 0
        XCTAssertLessThan(peak, 64 * 1024, "berth's peak memory stays bounded (KiB)")
        kill(berthPID, SIGTERM)
        XCTAssertEqual(run.wait(timeout: 60), .exited(0), String(run.errorText.suffix(500)))
        XCTAssertTrue(run.errorText.contains("log lines were dropped in all"), "what was dropped is counted and reported")
    }

    func test_partial_long_and_binary_lines_are_relayed_whole_cut_and_as_they_are() throws {
        // No newline at the end; a 40,000-byte line; bytes that are not UTF-8.
        try service("odd", """
        command = ["/usr/bin/python3", "-c", "import sys; o=sys.stdout.buffer; o.write(b'x'*40000+b'\\\\n'); o.write(b'bin:\\\\xff\\\\xfe\\\\x00end\\\\n'); o.write(b'partial'); o.flush()"]
        restart = "never"
        required = false
        """)
        let run = try berth(["/bin/sh", "-c", "sleep 1"])
        XCTAssertEqual(run.wait(timeout: 20), .exited(0), run.errorText)
        let lines = run.output.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        let prefix = Array("odd | ".utf8)
        let relayed = lines.filter { $0.starts(with: prefix) }.map { Array($0.dropFirst(prefix.count)) }
        XCTAssertEqual(relayed.count, 5, "16 KiB + 16 KiB + 7,232 bytes, the binary line, the partial one")
        XCTAssertEqual(relayed.prefix(3).map(\.count), [16384, 16384, 40000 - 32768])
        XCTAssertEqual(relayed[3], Array("bin:".utf8) + [0xff, 0xfe, 0x00] + Array("end".utf8))
        XCTAssertEqual(relayed[4], Array("partial".utf8))
    }

    func test_a_bad_service_file_stops_berth_before_anything_starts() throws {
        try service("broken", "command = [\"/bin/true\"]\nrestart = 'sometimes'\n")
        let run = try berth(["/bin/sh", "-c", "echo should-not-run"])
        XCTAssertEqual(run.wait(timeout: 10), .exited(2))
        XCTAssertEqual(run.errorText, "berth: \(directory)/services.d/broken.toml: line 2: restart: expected always, on-failure or never, not 'sometimes'\n")
        XCTAssertFalse(run.outputText.contains("should-not-run"))
    }

    func test_an_idle_berth_uses_no_cpu() throws {
        try service("idle", "command = [\"/bin/sleep\", \"60\"]\n")
        let run = try berth([])
        let berthPID = try XCTUnwrap(childOf(run.pid))
        usleep(500_000)
        func ticks() -> Int {
            let fields = (readText("/proc/\(berthPID)/stat") ?? "").split(separator: ")").last?.split(separator: " ") ?? []
            return fields.count > 13 ? (Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0) : -1
        }
        let before = ticks()
        sleep(10)
        let after = ticks()
        XCTAssertGreaterThanOrEqual(before, 0)
        XCTAssertLessThanOrEqual(after - before, 1, "CPU ticks (10 ms each) over 10 s of idling")
        kill(berthPID, SIGTERM)
        XCTAssertEqual(run.wait(timeout: 10), .exited(0))
    }

    // MARK: probes run as the service

    /// A directory owned by nobody (65534), as a workspace user's home is theirs.
    func homeOwnedByNobody() throws -> String {
        let home = directory + "/home"
        XCTAssertEqual(mkdir(home, 0o755), 0)
        XCTAssertEqual(chown(home, 65534, 65534), 0)
        return home
    }

    func test_readiness_and_health_probes_run_with_exactly_the_services_uid_groups_directory_and_environment() throws {
        let home = try homeOwnedByNobody()
        // Each record appears whole (written aside, then renamed): the
        // command below waits for all three to exist.
        let record = "{ id -u; id -G; pwd; env | sort; }"
        try service("app", """
        command = ["/bin/sh", "-c", "\(record) > service.tmp && mv service.tmp service.txt; exec sleep 30"]
        user = "nobody"
        working_dir = "\(home)"
        environment = { HOME = "\(home)", MARKER = "from-the-service-file" }
        required = false
        [readiness]
        command = ["/bin/sh", "-c", "\(record) > readiness.tmp && mv readiness.tmp readiness.txt"]
        [health]
        command = ["/bin/sh", "-c", "\(record) > health.tmp && mv health.tmp health.txt"]
        interval = 0.2
        """)
        let files = ["service", "readiness", "health"].map { "\(home)/\($0).txt" }
        let waitForAll = files.map { "[ -s \($0) ]" }.joined(separator: " && ")
        let run = try berth(["/bin/sh", "-c", "i=0; until \(waitForAll) || [ $i -ge 200 ]; do sleep 0.05; i=$((i+1)); done"])
        XCTAssertEqual(run.wait(timeout: 30), .exited(0), run.errorText)
        let records = files.map { readText($0) ?? "" }
        let service = records[0].split(separator: "\n").map(String.init)
        XCTAssertEqual(service.first, "65534", records[0])
        XCTAssertEqual(service.dropFirst().first, "65534", "nobody's groups: \(records[0])")
        XCTAssertEqual(service.dropFirst(2).first, home)
        XCTAssertTrue(service.contains("MARKER=from-the-service-file"), records[0])
        XCTAssertTrue(service.contains("HOME=\(home)"), records[0])
        XCTAssertEqual(records[1], records[0], "the readiness probe runs as the service runs")
        XCTAssertEqual(records[2], records[0], "the health probe runs as the service runs")
    }

    func test_a_path_entry_the_service_user_controls_never_runs_as_root_in_a_probe() throws {
        let home = try homeOwnedByNobody()
        // The user's own ~/bin comes first on the service's PATH (like
        // ~/.local/bin for a workspace user), and they put a `curl` there.
        XCTAssertEqual(mkdir(home + "/bin", 0o755), 0)
        try "#!/bin/sh\nid -u > \(home)/planted-ran-as\n".write(toFile: home + "/bin/curl", atomically: true, encoding: .utf8)
        XCTAssertEqual(chmod(home + "/bin/curl", 0o755), 0)
        XCTAssertEqual(chown(home + "/bin", 65534, 65534), 0)
        XCTAssertEqual(chown(home + "/bin/curl", 65534, 65534), 0)
        try service("app", """
        command = ["/bin/sleep", "30"]
        user = "nobody"
        working_dir = "\(home)"
        environment = { HOME = "\(home)", PATH = "\(home)/bin:/usr/bin:/bin" }
        [readiness]
        command = ["/bin/sh", "-c", "curl -fs http://127.0.0.1:8000/"]
        """)
        let run = try berth(["/bin/true"])
        XCTAssertEqual(run.wait(timeout: 30), .exited(0), run.errorText)
        XCTAssertEqual(readText(home + "/planted-ran-as"), "65534\n", "the probe ran the user's program as the user, never as root")
    }

    func test_a_curlrc_in_the_service_users_home_does_not_reach_a_root_probe() throws {
        let home = try homeOwnedByNobody()
        // Root's directory: only a probe running as root could write here.
        let rootOnly = directory + "/root-only"
        XCTAssertEqual(mkdir(rootOnly, 0o755), 0)
        try "output = \"\(rootOnly)/written-by-the-probe\"\n".write(toFile: home + "/.curlrc", atomically: true, encoding: .utf8)
        XCTAssertEqual(chown(home + "/.curlrc", 65534, 65534), 0)
        let port = Self.freePort()
        // The README's own probe, against a server the user runs.
        try service("web", """
        command = ["/usr/bin/python3", "-m", "http.server", "\(port)", "--bind", "127.0.0.1"]
        user = "nobody"
        working_dir = "\(home)"
        environment = { HOME = "\(home)" }
        [readiness]
        tcp = \(port)
        [health]
        command = ["curl", "-fs", "http://127.0.0.1:\(port)/"]
        interval = 0.2
        retries = 1
        restart = false
        """)
        let run = try berth([])
        let berthPID = try XCTUnwrap(childOf(run.pid))
        XCTAssertTrue(eventually(15) { run.errorText.contains("berth: web: unhealthy") || { _ = run.readLine(timeout: 0.05); return false }() },
                      "curl as nobody cannot follow the rc file into root's directory: \(run.errorText)")
        XCTAssertEqual(access(rootOnly + "/written-by-the-probe", F_OK), -1, "the user's ~/.curlrc made a root probe write a file")
        kill(berthPID, SIGTERM)
        XCTAssertEqual(run.wait(timeout: 15), .exited(0), run.errorText)
    }

    // MARK: berth's own output never blocks it

    func test_output_redirected_to_a_file_keeps_berths_the_services_and_the_commands_lines() throws {
        // berth's non-blocking description of a regular file would have its
        // own offset: the command, writing through the shared one, would
        // overwrite what berth and the services wrote before it.
        try service("early", "command = [\"/bin/sh\", \"-c\", \"echo service-line-1; echo service-line-2; exec sleep 30\"]\n")
        let file = directory + "/all-output"
        let berth = asPID1(["--", "/bin/sh", "-c", "'sleep 0.5; echo command-line-1; echo command-line-2'"]).joined(separator: " ")
        let run = try Subprocess(["/bin/sh", "-c", "exec \(berth) > \(file) 2>&1"],
                                 environment: servicesEnvironment())
        XCTAssertEqual(run.wait(timeout: 30), .exited(0), run.errorText)
        let lines = (readText(file) ?? "").split(separator: "\n").map(String.init)
        for expected in ["berth: early: started (pid 2)", "early | service-line-1", "early | service-line-2", "command-line-1", "command-line-2", "berth: early: stopped (killed by SIGTERM)"] {
            XCTAssertTrue(lines.contains(expected), "\(expected) in \(lines)")
        }
    }

    func test_a_stalled_reader_and_a_flood_of_output_notify_datagrams_and_restarts_never_delay_signal_forwarding() throws {
        // Floods its stdout and its notify socket with 4 KB STATUS= lines
        // (each one a line berth logs to its stderr, so a pipe of 64 KiB
        // fills within the first second).
        let chatter = directory + "/chatter.py"
        try """
        import os, socket
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.setblocking(False)
        address = os.environ["NOTIFY_SOCKET"]
        s.sendto(b"READY=1", address)
        while True:
            os.write(1, b"a" * 99 + b"\\n")
            try:
                s.sendto(b"STATUS=" + b"chatter " * 500, address)
            except OSError:
                pass
        """.write(toFile: chatter, atomically: true, encoding: .utf8)
        try service("chatter", """
        command = ["/usr/bin/python3", "\(chatter)"]
        required = false
        [readiness]
        notify = true
        """)
        // Restarts every 50 ms: three lines of berth's own log each time.
        try service("restarter", """
        command = ["/bin/sh", "-c", "exit 1"]
        backoff_base = 0.05
        backoff_cap = 0.05
        crash_limit = 1000
        required = false
        """)
        let signals = directory + "/signals"
        let run = try berth(["/bin/sh", "-c", "exec \(Built.testkit) signal-clock 20 > \(signals)"])
        let berthPID = try XCTUnwrap(childOf(run.pid))
        func signalLines() -> [String] { (readText(signals) ?? "").split(separator: "\n").map(String.init) }
        // From here on nobody reads berth's stdout or stderr (the test's pipes).
        XCTAssertTrue(eventually { signalLines().first?.hasPrefix("ready") == true }, "the command started")
        usleep(1_000_000)
        var delays: [Double] = []
        for round in 1...20 {
            let sent = MonotonicClock.now()
            kill(berthPID, SIGUSR1)
            let deadline = now() + 2
            while signalLines().count < round + 1, now() < deadline { usleep(500) }
            guard signalLines().count == round + 1, let received = UInt64(signalLines()[round]) else { break }
            delays.append(Double(received &- sent) / 1e6)
            usleep(20_000)
        }
        XCTAssertEqual(delays.count, 20, "every signal was forwarded while berth's output was stalled")
        XCTAssertLessThan(delays.max() ?? .infinity, 100, "each forwarded within 100 ms (ms: \(delays))")
        // Un-stalled: the command ended after its 20 signals, berth stops the services and exits.
        XCTAssertEqual(run.wait(timeout: 30), .exited(0), String(run.errorText.suffix(500)))
        XCTAssertTrue(run.errorText.contains("log lines were dropped in all"), "what was dropped is counted and reported")
    }
}
