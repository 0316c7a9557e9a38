import Foundation
import Glibc
import TestSupport
import XCTest

/// Each service-file option end to end: berth as PID 1 of a fresh PID
/// namespace runs a service written with it, and the service itself (or
/// berth's log, in order) shows the option took effect. uid 65534 (nobody)
/// is the non-root user this machine has.
final class ServiceOptionsTests: ServicesDirectoryTestCase {
    /// berth with services only (no command), as a long-running container.
    func berth(_ extra: [String: String] = [:]) throws -> (run: Subprocess, berth: pid_t) {
        let environment = servicesEnvironment(extra)
        let run = try Subprocess(asPID1([]), environment: environment)
        return (run, try XCTUnwrap(childOf(run.pid), "unshare's child is berth"))
    }

    /// The lines `name` printed (relayed as `name | line`), read until one
    /// satisfies `last` or the time is up.
    func lines(of name: String, in run: Subprocess, until last: (String) -> Bool, timeout: Double = 15) -> [String] {
        var printed: [String] = []
        let deadline = now() + timeout
        while now() < deadline, let line = run.readLine(timeout: max(0, deadline - now())) {
            guard line.hasPrefix(name + " | ") else { continue }
            printed.append(String(line.dropFirst(name.count + 3)))
            if last(printed.last!) { break }
        }
        return printed
    }

    /// berth's log lines, once `condition` holds for them (or the time is up).
    func log(of run: Subprocess, once condition: ([String]) -> Bool, timeout: Double = 15) -> [String] {
        let deadline = now() + timeout
        var lines: [String] = []
        repeat {
            _ = run.readLine(timeout: 0.05)
            lines = run.errorText.split(separator: "\n").map(String.init)
        } while !condition(lines) && now() < deadline
        return lines
    }

    func stop(_ started: (run: Subprocess, berth: pid_t)) {
        kill(started.berth, SIGTERM)
        XCTAssertEqual(started.run.wait(timeout: 15), .exited(0), started.run.errorText)
    }

    /// What a service sees of itself, one `key=value` per line, then `end`.
    static let identity = "echo uid=$(id -u) gid=$(id -g) groups=\\\"$(id -G)\\\" pwd=$(pwd); echo HOME=$HOME USER=$USER LOGNAME=$LOGNAME SHELL=$SHELL; echo end; exec sleep 30"

    func test_user_runs_the_service_as_that_user_with_only_its_groups_and_its_login_variables() throws {
        try service("as-nobody", """
        command = ["/bin/sh", "-c", "\(Self.identity)"]
        user = "nobody"
        working_dir = "/"
        """)
        let started = try berth()
        let printed = lines(of: "as-nobody", in: started.run, until: { $0 == "end" })
        // nobody's passwd entry: 65534:65534, home /nonexistent, shell nologin;
        // none of root's groups are kept.
        XCTAssertEqual(printed, ["uid=65534 gid=65534 groups=65534 pwd=/", "HOME=/nonexistent USER=nobody LOGNAME=nobody SHELL=/usr/sbin/nologin", "end"],
                       started.run.errorText)
        stop(started)
    }

    func test_group_replaces_the_users_groups_with_that_one() throws {
        try service("grouped", """
        command = ["/bin/sh", "-c", "\(Self.identity)"]
        user = "nobody"
        group = "www-data"
        working_dir = "/"
        """)
        let started = try berth()
        let printed = lines(of: "grouped", in: started.run, until: { $0 == "end" })
        XCTAssertEqual(printed.first, "uid=65534 gid=33 groups=33 pwd=/", "www-data is gid 33: \(printed) \(started.run.errorText)")
        stop(started)
    }

    func test_working_dir_is_the_services_current_directory_and_without_it_root_services_start_in_the_root() throws {
        let work = directory + "/work"
        XCTAssertEqual(mkdir(work, 0o755), 0)
        try service("placed", """
        command = ["/bin/sh", "-c", "\(Self.identity)"]
        working_dir = "\(work)"
        """)
        try service("unplaced", """
        command = ["/bin/sh", "-c", "\(Self.identity)"]
        """)
        // berth itself is started in another directory: neither service inherits it.
        let environment = servicesEnvironment()
        let run = try Subprocess(asPID1([]), environment: environment, workingDirectory: directory)
        let started = (run: run, berth: try XCTUnwrap(childOf(run.pid)))
        var seen: [String: String] = [:]
        let deadline = now() + 15
        while seen.count < 2, now() < deadline, let line = run.readLine(timeout: 15) {
            for name in ["placed", "unplaced"] where line.hasPrefix(name + " | uid=") { seen[name] = line }
        }
        XCTAssertEqual(seen["placed"], "placed | uid=0 gid=0 groups=0 pwd=\(work)", run.errorText)
        XCTAssertEqual(seen["unplaced"], "unplaced | uid=0 gid=0 groups=0 pwd=/", run.errorText)
        stop(started)
    }

    func test_environment_adds_to_what_the_service_inherits_overrides_it_and_reaches_that_service_only() throws {
        let show = "echo MARKER=${MARKER-unset} INHERITED=${INHERITED-unset} OVERRIDDEN=${OVERRIDDEN-unset}; echo end; exec sleep 30"
        try service("with-env", """
        command = ["/bin/sh", "-c", "\(show)"]
        environment = { MARKER = "from the file", OVERRIDDEN = "by-the-file" }
        """)
        try service("without-env", """
        command = ["/bin/sh", "-c", "\(show)"]
        """)
        let started = try berth(["INHERITED": "from-berth", "OVERRIDDEN": "from-berth"])
        var seen: [String: String] = [:]
        let deadline = now() + 15
        while seen.count < 2, now() < deadline, let line = started.run.readLine(timeout: 15) {
            for name in ["with-env", "without-env"] where line.hasPrefix(name + " | MARKER=") { seen[name] = String(line.dropFirst(name.count + 3)) }
        }
        XCTAssertEqual(seen["with-env"], "MARKER=from the file INHERITED=from-berth OVERRIDDEN=by-the-file", started.run.errorText)
        XCTAssertEqual(seen["without-env"], "MARKER=unset INHERITED=from-berth OVERRIDDEN=from-berth", started.run.errorText)
        stop(started)
    }

    func test_stop_signal_is_the_signal_a_stopping_service_gets() throws {
        // Prints each signal it gets and exits 0 on SIGUSR1; SIGTERM alone
        // would leave it running until the grace's SIGKILL.
        try service("stopper", """
        command = ["\(Built.testkit)", "print-signals", "\(SIGUSR1)", "60"]
        stop_signal = "USR1"
        stop_grace = 30
        """)
        let started = try berth(["BERTH_SHUTDOWN_TIMEOUT": "20"])
        XCTAssertEqual(lines(of: "stopper", in: started.run, until: { $0.hasPrefix("ready") }).first?.hasPrefix("ready"), true, started.run.errorText)
        stop(started)
        let printed = started.run.outputText.split(separator: "\n").filter { $0.hasPrefix("stopper | ") }.map { String($0.dropFirst("stopper | ".count)) }
        XCTAssertEqual(printed.dropFirst().first, "\(SIGUSR1)", "the first signal the service got: \(printed)")
        XCTAssertFalse(printed.contains("\(SIGTERM)"), "it never got SIGTERM: \(printed)")
        XCTAssertTrue(started.run.errorText.contains("berth: stopper: stopped (exited with status 0)"), started.run.errorText)
        XCTAssertFalse(started.run.errorText.contains("SIGKILL"), started.run.errorText)
    }

    /// Two services, one per policy, whose every run appends its name to a
    /// file and exits with `status`; returns the names in run order and
    /// berth's log, once `watched` has ended four times (a run counted by
    /// its start could be stopped before it wrote its name).
    private func runPolicies(_ policies: [(name: String, policy: String)], exitStatus: Int, watched: String) throws -> (ran: [String], lines: [String]) {
        let runs = directory + "/runs"
        for (name, policy) in policies {
            try service(name, """
            command = ["/bin/sh", "-c", "echo \(name) >> \(runs); exit \(exitStatus)"]
            restart = "\(policy)"
            backoff_base = 0.05
            backoff_cap = 0.05
            crash_limit = 1000
            required = false
            """)
        }
        let started = try berth()
        let lines = log(of: started.run) { lines in lines.filter { $0.hasPrefix("berth: \(watched): exited with status") }.count >= 4 }
        stop(started)
        return ((readText(runs) ?? "").split(separator: "\n").map(String.init), lines)
    }

    func test_restart_always_restarts_a_clean_exit_that_on_failure_leaves_alone() throws {
        let (ran, lines) = try runPolicies([("always", "always"), ("once", "on-failure")], exitStatus: 0, watched: "always")
        XCTAssertGreaterThanOrEqual(ran.filter { $0 == "always" }.count, 4, "restarted after each clean exit: \(lines)")
        // By then "once" had had the same backoff three times over.
        XCTAssertEqual(ran.filter { $0 == "once" }.count, 1, "on-failure does not restart a clean exit: \(lines)")
        XCTAssertFalse(lines.contains { $0.hasPrefix("berth: once: restarting") }, "\(lines)")
        XCTAssertTrue(lines.contains { $0.hasPrefix("berth: always: restarting in") }, "\(lines)")
    }

    func test_restart_never_leaves_a_failed_run_that_on_failure_restarts() throws {
        let (ran, lines) = try runPolicies([("never", "never"), ("again", "on-failure")], exitStatus: 3, watched: "again")
        XCTAssertGreaterThanOrEqual(ran.filter { $0 == "again" }.count, 4, "on-failure restarted each failed run: \(lines)")
        // By then "never" had had the same backoff three times over.
        XCTAssertEqual(ran.filter { $0 == "never" }.count, 1, "never runs once: \(lines)")
        XCTAssertTrue(lines.contains("berth: never: exited with status 3"), "\(lines)")
        XCTAssertFalse(lines.contains { $0.hasPrefix("berth: never: restarting") }, "\(lines)")
    }

    func test_backoff_cap_caps_the_doubling_restart_delay() throws {
        // 100 ms doubling, capped at 150 ms: 100, 150, 150, 150 (each ±20 %).
        try service("capped", """
        command = ["/bin/sh", "-c", "exit 1"]
        backoff_base = 0.1
        backoff_cap = 0.15
        crash_limit = 100
        required = false
        """)
        let started = try berth()
        let lines = log(of: started.run) { self.restartDelays("capped", in: $0).count >= 4 }
        stop(started)
        let delays = restartDelays("capped", in: lines)
        XCTAssertGreaterThanOrEqual(delays.count, 4, "\(lines)")
        for (delay, expected) in zip(delays, [100, 150, 150, 150]) {
            XCTAssertTrue(Double(expected) * 0.8 - 1 <= Double(delay) && Double(delay) <= Double(expected) * 1.2 + 1, "delays \(delays)")
        }
    }

    func test_required_false_lets_the_command_start_before_that_service_is_ready() throws {
        // "slow" is never ready (its probe never passes, and its readiness
        // timeout is long); "quick" is required and ready at once.
        try service("slow", """
        command = ["/bin/sh", "-c", "echo up; exec sleep 60"]
        required = false
        [readiness]
        command = ["/bin/sh", "-c", "test -e \(directory)/never"]
        timeout = 60
        """)
        try service("quick", """
        command = ["/bin/sh", "-c", "echo up; exec sleep 60"]
        [readiness]
        command = ["/bin/true"]
        """)
        // berth's log, the services' and the command's lines in one pipe.
        let run = try Subprocess(["/bin/sh", "-c", "exec \"$@\" 2>&1", "sh"] + asPID1(["--", "/bin/sh", "-c", "echo command-ran"]),
                                 environment: servicesEnvironment())
        XCTAssertEqual(run.wait(timeout: 30), .exited(0), run.outputText)
        let lines = run.outputText.split(separator: "\n").map(String.init)
        let slowStarted = try XCTUnwrap(lines.firstIndex { $0.hasPrefix("berth: slow: started") }, run.outputText)
        let quickReady = try XCTUnwrap(lines.firstIndex(of: "berth: quick: ready"), run.outputText)
        let command = try XCTUnwrap(lines.firstIndex(of: "command-ran"), run.outputText)
        XCTAssertLessThan(slowStarted, command, run.outputText)
        XCTAssertLessThan(quickReady, command, "the required one gates the command: \(lines)")
        XCTAssertFalse(lines.contains("berth: slow: ready"), "the command ran while slow was still not ready: \(lines)")
    }

    func test_health_timeout_ends_a_hanging_probe_as_a_failed_check() throws {
        // The same hanging probe (it records each start, then sleeps 60 s)
        // with a short and a long timeout: the short one's probes are ended
        // and counted as failures again and again while the long one's first
        // probe is still running.
        for (name, timeout) in [("short", "0.2"), ("long", "50")] {
            try service(name, """
            command = ["/bin/sh", "-c", "echo up; exec sleep 60"]
            [health]
            command = ["/bin/sh", "-c", "echo probe >> \(directory)/\(name)-probes; exec sleep 60"]
            interval = 0.1
            timeout = \(timeout)
            retries = 2
            restart = false
            """)
        }
        let started = try berth()
        func probes(_ name: String) -> Int { (readText("\(directory)/\(name)-probes") ?? "").split(separator: "\n").count }
        XCTAssertTrue(eventually(20) { _ = started.run.readLine(timeout: 0.01); return probes("short") >= 4 }, "the short probes were never ended: \(started.run.errorText)")
        let lines = log(of: started.run) { $0.contains("berth: short: unhealthy (2 failed checks)") }
        XCTAssertEqual(probes("long"), 1, "the long timeout's probe still runs: \(lines)")
        XCTAssertTrue(lines.contains("berth: short: unhealthy (2 failed checks)"), "\(lines)")
        XCTAssertFalse(lines.contains { $0.hasPrefix("berth: long: unhealthy") }, "\(lines)")
        stop(started)
    }

    func test_pass_secrets_gives_that_service_a_secret_provisioning_took_from_the_others() throws {
        // Provisioning runs (ai-cli consumes OPENAI_API_KEY), so berth takes
        // the key from the command's and the services' environments; only
        // the service that opts in gets it back.
        let root = try ThrowawayRoot(tools: ["/bin/sleep"])
        for directory in ["/etc/berth", "/etc/berth/services.d"] { XCTAssertEqual(mkdir(root.path + directory, 0o755), 0) }
        let show = "echo OPENAI=${OPENAI_API_KEY-unset}"
        let key = "sk-proj-pass-\(Int.random(in: 100_000..<999_999))"
        // The command waits for both services' lines, then prints its environment.
        let wait = "i=0; while [ $i -lt 200 ]; do [ -e /tmp/plain-done ] && [ -e /tmp/opted-in-done ] && break; i=$((i+1)); sleep 0.05; done"
        try root.write("/etc/berth/services.d/opted-in.toml", """
        command = ["/bin/sh", "-c", "\(show); : > /tmp/opted-in-done"]
        pass_secrets = ["OPENAI_API_KEY"]
        restart = "never"
        required = false
        """)
        try root.write("/etc/berth/services.d/plain.toml", """
        command = ["/bin/sh", "-c", "\(show); : > /tmp/plain-done"]
        restart = "never"
        required = false
        """)
        let run = try root.provision(["OPENAI_API_KEY": key], command: ["/bin/sh", "-c", "\(wait); exec /testkit env"])
        XCTAssertEqual(run.status, .exited(0), run.errorText)
        XCTAssertEqual(try root.provisionedSteps()["ai-cli"]?["status"] as? String, "ok", run.errorText)
        let lines = run.outputText.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains("opted-in | OPENAI=\(key)"), run.outputText + run.errorText)
        XCTAssertTrue(lines.contains("plain | OPENAI=unset"), run.outputText + run.errorText)
        XCTAssertTrue(lines.contains { $0.hasPrefix("PATH=") }, "the command printed its environment: \(run.outputText)")
        XCTAssertFalse(lines.contains { $0.hasPrefix("OPENAI_API_KEY=") }, "the command does not get it: \(run.outputText)")
    }

    func test_a_service_not_ready_by_its_readiness_timeout_is_stopped_and_started_again() throws {
        let port = SupervisorTests.freePort()
        // Nothing ever listens on the port.
        try service("deaf", """
        command = ["/bin/sh", "-c", "echo up; exec sleep 60"]
        backoff_base = 0.1
        [readiness]
        tcp = \(port)
        timeout = 0.5
        """)
        let started = try berth()
        let lines = log(of: started.run) { lines in lines.filter { $0.hasPrefix("berth: deaf: started") }.count >= 2 }
        stop(started)
        func position(_ prefix: String, after start: Int = 0) -> Int? {
            lines.indices.first { $0 >= start && lines[$0].hasPrefix(prefix) }
        }
        let first = try XCTUnwrap(position("berth: deaf: started"), "\(lines)")
        let expired = try XCTUnwrap(position("berth: deaf: not ready within 0.5 s; stopping it", after: first), "\(lines)")
        let killed = try XCTUnwrap(position("berth: deaf: killed by SIGTERM", after: expired), "stopped with its stop signal: \(lines)")
        let again = try XCTUnwrap(position("berth: deaf: started", after: killed), "started again: \(lines)")
        XCTAssertNil(position("berth: deaf: ready"), "never ready: \(lines)")
        XCTAssertLessThan(killed, again)
    }

    /// `berth: NAME: restarting in N ms` delays, in order.
    func restartDelays(_ name: String, in lines: [String]) -> [Int] {
        let prefix = "berth: \(name): restarting in "
        return lines.filter { $0.hasPrefix(prefix) && $0.hasSuffix(" ms") }.compactMap { Int($0.dropFirst(prefix.count).dropLast(3)) }
    }

    func test_crash_window_counts_only_the_failed_runs_within_it() throws {
        // Backoff 0.2, 0.4, 0.8 s (±20 %): three failures take at least
        // 0.48 s, so never three within 0.3 s; always within 60 s.
        for (name, window) in [("spread", "0.3"), ("bunched", "60")] {
            try service(name, """
            command = ["/bin/sh", "-c", "exit 1"]
            backoff_base = 0.2
            crash_limit = 3
            crash_window = \(window)
            required = false
            """)
        }
        let started = try berth()
        let lines = log(of: started.run) { lines in lines.filter { $0.hasPrefix("berth: spread: started") }.count >= 4 }
        stop(started)
        let failed = try XCTUnwrap(lines.firstIndex(of: "berth: bunched: failed: 3 failed runs within 60 s"), "\(lines)")
        XCTAssertEqual(lines.filter { $0.hasPrefix("berth: bunched: started") }.count, 3, "\(lines)")
        XCTAssertFalse(lines.contains { $0.hasPrefix("berth: spread: failed") }, "\(lines)")
        let fourth = try XCTUnwrap(lines.indices.filter { lines[$0].hasPrefix("berth: spread: started") }.dropFirst(3).first, "\(lines)")
        XCTAssertLessThan(failed, fourth, "spread ran a fourth time after bunched had failed for good: \(lines)")
    }

    func test_a_run_longer_than_stable_after_resets_the_backoff() throws {
        let count = directory + "/count"
        // Runs 1-3 fail at once, run 4 fails after 1 s (stable: 0.5 s), run 5 at once.
        try service("flaky", """
        command = ["/bin/sh", "-c", "echo run >> \(count); n=$(wc -l < \(count)); [ $n -eq 4 ] && sleep 1; exit 1"]
        backoff_base = 0.1
        stable_after = 0.5
        crash_limit = 100
        required = false
        """)
        let started = try berth()
        let lines = log(of: started.run) { self.restartDelays("flaky", in: $0).count >= 4 }
        stop(started)
        let delays = restartDelays("flaky", in: lines)
        XCTAssertEqual(delays.count, 4, "\(lines)")
        guard delays.count == 4 else { return }
        // 100, 200, 400 ms ±20 %, then back to 100 (not 800) after the stable run.
        for (delay, expected) in zip(delays, [100, 200, 400, 100]) {
            XCTAssertTrue(Double(expected) * 0.8 - 1 <= Double(delay) && Double(delay) <= Double(expected) * 1.2 + 1, "delays \(delays)")
        }
    }

    func test_health_restart_restarts_a_service_that_failed_its_retries_in_a_row() throws {
        let sick = directory + "/sick"
        try service("watched", """
        command = ["/bin/sh", "-c", "echo up; exec sleep 60"]
        [health]
        command = ["/bin/sh", "-c", "test ! -e \(sick)"]
        interval = 0.1
        retries = 3
        restart = true
        """)
        let started = try berth()
        XCTAssertEqual(lines(of: "watched", in: started.run, until: { $0 == "up" }), ["up"], started.run.errorText)
        XCTAssertTrue(FileManager.default.createFile(atPath: sick, contents: Data()))
        let lines = log(of: started.run) { lines in lines.filter { $0.hasPrefix("berth: watched: started") }.count >= 2 }
        stop(started)
        let unhealthy = try XCTUnwrap(lines.firstIndex(of: "berth: watched: unhealthy (3 failed checks); restarting it"), "\(lines)")
        let again = try XCTUnwrap(lines.indices.filter { lines[$0].hasPrefix("berth: watched: started") }.dropFirst().first, "\(lines)")
        XCTAssertLessThan(unhealthy, again, "\(lines)")
        XCTAssertTrue(lines[unhealthy..<again].contains("berth: watched: stopped (killed by SIGTERM)"), "stopped with its stop signal first: \(lines)")
    }
}
