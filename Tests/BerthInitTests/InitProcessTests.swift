import BerthCore
import Glibc
import TestSupport
import XCTest

/// berth run as PID 1 of a fresh PID namespace (or as a subreaper), end to end.
final class InitProcessTests: XCTestCase {
    let kit = Built.testkit

    func test_orphan_storm_of_10000_leaves_zero_zombies() throws {
        let storm = try Subprocess(asPID1(["--", "sh", "-c", "\(kit) orphans 10000 && \(kit) zombies 10"]))
        XCTAssertEqual(storm.wait(timeout: 120), .exited(0), storm.errorText)
        XCTAssertTrue(storm.outputText.contains("spawned 10000 orphans"), storm.outputText)
        XCTAssertTrue(storm.outputText.contains("zombies 0"), storm.outputText)
    }

    func test_zombies_are_reaped_while_a_signal_flood_arrives() throws {
        // Coalesced SIGCHLDs interleaved with hundreds of other signals:
        // every orphan is still reaped and no signal handling error surfaces.
        let run = try Subprocess(asPID1(["--", "sh", "-c", "trap '' WINCH; \(kit) orphans 3000 && \(kit) zombies 10"]))
        guard let berth = childOf(run.pid) else { return XCTFail("no berth") }
        for _ in 0..<500 { kill(berth, SIGWINCH); usleep(200) }
        XCTAssertEqual(run.wait(timeout: 60), .exited(0), run.errorText)
        XCTAssertTrue(run.outputText.contains("zombies 0"), run.outputText)
        XCTAssertEqual(run.errorText, "")
    }

    func test_every_catchable_signal_is_forwarded_to_the_child() throws {
        let run = try Subprocess(asPID1(["--", kit, "print-signals", "\(SIGKILL)", "60"]))
        guard let ready = run.readLine(), ready.hasPrefix("ready"), let berth = childOf(run.pid) else {
            return XCTFail("child not ready: \(run.errorText)")
        }
        let catchable = Array(1...31).map(Int32.init).filter { ![SIGKILL, SIGSTOP, SIGCHLD].contains($0) }
            + [Signals.realtimeMin, Signals.realtimeMin + 5, Signals.realtimeMax]
        for number in catchable {
            kill(berth, number)
            XCTAssertEqual(run.readLine(), "\(number)", "signal \(Signals.name(of: number)) not forwarded")
        }
        kill(berth, SIGKILL)
        run.wait()
    }

    func test_exit_code_is_the_childs_and_128_plus_n_for_a_signal() throws {
        for code in [0, 1, 2, 42, 126, 255] {
            let run = try Subprocess([Built.berth, "--", "sh", "-c", "exit \(code)"])
            XCTAssertEqual(run.wait(), .exited(Int32(code)))
        }
        for signal in [SIGTERM, SIGKILL, SIGSEGV, SIGHUP] {
            let run = try Subprocess([Built.berth, "--", "sh", "-c", "kill -\(signal) $$"])
            XCTAssertEqual(run.wait(), .exited(128 + signal))
        }
    }

    func test_remapped_exit_codes_become_zero() throws {
        let run = try Subprocess([Built.berth, "-e", "143", "-e", "3", "--", "sh", "-c", "exit 3"])
        XCTAssertEqual(run.wait(), .exited(0))
        let other = try Subprocess([Built.berth, "--remap-exit", "3", "--", "sh", "-c", "exit 4"])
        XCTAssertEqual(other.wait(), .exited(4))
        let viaEnvironment = try Subprocess([Built.berth, "--", "sh", "-c", "kill $$"], environment: ["BERTH_REMAP_EXIT": "143"])
        XCTAssertEqual(viaEnvironment.wait(), .exited(0))
    }

    func test_sigterm_to_pid1_reaches_the_child_and_sets_the_exit_code() throws {
        let run = try Subprocess(asPID1(["--", "sleep", "60"]))
        guard let berth = childOf(run.pid) else { return XCTFail("no berth") }
        usleep(100_000)
        let start = now()
        kill(berth, SIGTERM)
        XCTAssertEqual(run.wait(timeout: 10), .exited(128 + SIGTERM))
        XCTAssertLessThan(now() - start, 2)
    }

    func test_daemonized_straggler_ignoring_sigterm_is_killed_after_the_grace() throws {
        let pidFile = "/tmp/berth-test-straggler-\(getpid())"
        defer { unlink(pidFile) }
        let start = now()
        let run = try Subprocess(asPID1(["--kill-grace", "0.5", "--", kit, "stubborn-daemon", "60", pidFile]),
                                 environment: ["BERTH_VERBOSITY": "2", "PATH": "/usr/bin:/bin"])
        XCTAssertEqual(run.wait(timeout: 20), .exited(0), run.errorText)
        let elapsed = now() - start
        XCTAssertGreaterThan(elapsed, 0.5, "berth did not wait for the grace period")
        XCTAssertLessThan(elapsed, 5)
        XCTAssertTrue(run.errorText.contains("SIGKILL"), run.errorText)
    }

    func test_as_pid1_without_a_terminal_a_child_that_stops_itself_is_continued() throws {
        for signal in ["TSTP", "TTIN", "TTOU"] {
            let run = try Subprocess(asPID1(["--", "sh", "-c", "echo before; kill -\(signal) $$; echo after; exit 7"]),
                                     environment: ["BERTH_VERBOSITY": "2", "PATH": "/usr/bin:/bin"])
            XCTAssertEqual(run.wait(timeout: 20), .exited(7), "\(signal): \(run.errorText)")
            XCTAssertEqual(run.outputText, "before\nafter\n", signal)
            let lines = run.errorText.split(separator: "\n").map(String.init)
            let stopped = try XCTUnwrap(lines.firstIndex { $0.contains("child stopped by SIG\(signal); PID 1 cannot be suspended, so it is continued") },
                                        "\(signal): \(run.errorText)")
            let exited = try XCTUnwrap(lines.firstIndex { $0.contains("child exited with status 7") }, run.errorText)
            XCTAssertLessThan(stopped, exited, run.errorText)
        }
    }

    func test_straggler_that_exits_on_sigterm_ends_berth_before_the_grace() throws {
        let start = now()
        let run = try Subprocess(asPID1(["--kill-grace", "10", "--", "sh", "-c", "sleep 60 & exit 7"]),
                                 environment: ["BERTH_VERBOSITY": "3", "PATH": "/usr/bin:/bin"])
        XCTAssertEqual(run.wait(timeout: 20), .exited(7), run.errorText)
        // In berth's log: SIGTERM to the rest, the straggler reaped as killed
        // by it, then berth's exit; no SIGKILL round.
        let lines = run.errorText.split(separator: "\n").map(String.init)
        let terminated = try XCTUnwrap(lines.firstIndex { $0.hasPrefix("berth: sent SIGTERM to the remaining processes") }, run.errorText)
        let reaped = try XCTUnwrap(lines.firstIndex { $0.hasPrefix("berth: reaped orphan pid ") && $0.hasSuffix(" (killed by SIGTERM)") }, run.errorText)
        let exiting = try XCTUnwrap(lines.firstIndex { $0.hasPrefix("berth: exiting with 7") }, run.errorText)
        XCTAssertLessThan(terminated, reaped, run.errorText)
        XCTAssertLessThan(reaped, exiting, run.errorText)
        XCTAssertFalse(run.errorText.contains("sending SIGKILL"), run.errorText)
        // Not after the 10 s grace (a bound that cannot hang the test).
        XCTAssertLessThan(now() - start, 5)
    }

    func test_subreaper_mode_when_not_pid1_reaps_and_terminates_descendants() throws {
        // berth is not PID 1 here: it must register as subreaper, reap the
        // orphans re-parented to it, and still sweep a setsid'd straggler.
        let pidFile = "/tmp/berth-test-subreaper-\(getpid())"
        defer { unlink(pidFile) }
        let run = try Subprocess([Built.berth, "-v", "--kill-grace", "0.3", "--", "sh", "-c",
                                  "\(kit) orphans 200 && \(kit) stubborn-daemon 60 \(pidFile) && sleep 0.3 && exit 5"])
        XCTAssertEqual(run.wait(timeout: 20), .exited(5), run.errorText)
        XCTAssertTrue(run.errorText.contains("registered as child subreaper"), run.errorText)
        let daemon = readText(pidFile).flatMap { pid_t($0.split(separator: "\n").first ?? "") }
        XCTAssertNotNil(daemon)
        if let daemon {
            XCTAssertNotEqual(kill(daemon, 0), 0, "straggler \(daemon) survived berth")
        }
    }

    func test_signal_is_not_forwarded_to_a_process_that_reused_the_childs_pid() throws {
        // After the child (pid 2) exits, another process is made to get pid 2
        // while berth waits out the grace period. A SIGUSR1 to berth then must
        // not reach it.
        let run = try Subprocess(asPID1(["--kill-grace", "3", "--", "sh", "-c", "\(kit) reuse-pid $$ 20; exit 0"]))
        guard let berth = childOf(run.pid) else { return XCTFail("no berth") }
        guard let ready = run.readLine(timeout: 10) else { return XCTFail("pid was not reused: \(run.errorText)") }
        XCTAssertEqual(ready, "ready 2")
        kill(berth, SIGUSR1)
        kill(berth, SIGHUP)
        XCTAssertEqual(run.wait(timeout: 20), .exited(0))
        XCTAssertEqual(run.readLine(timeout: 0.1), nil, "a signal reached the process that reused the pid")
    }

    func test_child_gets_the_signal_mask_and_dispositions_berth_inherited() throws {
        // cat, not grep: GNU grep installs its own SIGSEGV handler.
        let run = try Subprocess([kit, "with-signal-state", Built.berth, "--", "cat", "/proc/self/status"])
        XCTAssertEqual(run.wait(), .exited(0), run.errorText)
        let lines = run.outputText.split(separator: "\n")
        // Signals 1-31 only: the test runner itself may leave real-time ones ignored.
        func mask(_ name: String) -> UInt64 {
            let value = lines.first { $0.hasPrefix(name) }.flatMap { UInt64($0.split(separator: "\t").last ?? "", radix: 16) }
            return (value ?? 0) & 0x7fff_ffff
        }
        func bit(_ signal: Int32) -> UInt64 { 1 << UInt64(signal - 1) }
        XCTAssertEqual(mask("SigBlk"), bit(SIGTTIN) | bit(SIGILL) | bit(SIGTERM))
        XCTAssertEqual(mask("SigIgn"), bit(SIGTTOU) | bit(SIGSEGV) | bit(SIGINT))
    }

    func test_no_descriptor_of_berth_or_its_parent_leaks_into_the_child() throws {
        let run = try Subprocess([kit, "with-open-fd", Built.berth, "--", "ls", "/proc/self/fd"])
        XCTAssertEqual(run.wait(), .exited(0), run.errorText)
        let fds = Set(run.outputText.split(separator: "\n").compactMap { Int($0) })
        // 0-2 and the descriptor ls opened to read the directory.
        XCTAssertTrue(fds.isSubset(of: [0, 1, 2, 3]), "leaked: \(fds.sorted())")
    }

    func test_child_keeps_the_working_directory_and_berth_moves_to_root() throws {
        let run = try Subprocess([Built.berth, "--", "sh", "-c", "readlink /proc/$PPID/cwd; pwd"], workingDirectory: "/tmp")
        XCTAssertEqual(run.wait(), .exited(0))
        XCTAssertEqual(run.outputText, "/\n/tmp\n")
    }

    func test_exec_failure_exits_127_or_126_with_a_one_line_error() throws {
        let missing = try Subprocess([Built.berth, "--", "/nonexistent/tool", "x"])
        XCTAssertEqual(missing.wait(), .exited(127))
        XCTAssertEqual(missing.errorText, "berth: cannot run '/nonexistent/tool': No such file or directory\n")
        let plainFile = "/tmp/berth-test-not-executable-\(getpid())"
        defer { unlink(plainFile) }
        close(open(plainFile, O_CREAT | O_WRONLY, 0o644))
        let notExecutable = try Subprocess([Built.berth, "--", plainFile])
        XCTAssertEqual(notExecutable.wait(), .exited(126))
        XCTAssertEqual(notExecutable.errorText, "berth: cannot run '\(plainFile)': Permission denied\n")
        let notInPath = try Subprocess([Built.berth, "no-such-command-anywhere"])
        XCTAssertEqual(notInPath.wait(), .exited(127))
    }

    func test_kill_group_option_signals_the_whole_process_group() throws {
        // The shell ignores USR1 and waits for print-signals, which exits on
        // USR1: only a signal to the whole group ends it (and so the shell).
        for (flag, expected) in [("-g", Int32(9)), ("--kill-group", Int32(9))] {
            let run = try Subprocess(asPID1([flag, "--", "sh", "-c", "trap '' USR1; \(kit) print-signals \(SIGUSR1) 30; exit 9"]))
            guard run.readLine() != nil, let berth = childOf(run.pid) else { return XCTFail("not ready") }
            kill(berth, SIGUSR1)
            XCTAssertEqual(run.wait(timeout: 10), .exited(expected))
        }
        // Without it only the shell gets USR1 (and ignores it).
        let run = try Subprocess(asPID1(["--", "sh", "-c", "trap '' USR1; \(kit) print-signals \(SIGUSR1) 30; exit 9"]))
        guard run.readLine() != nil, let berth = childOf(run.pid) else { return XCTFail("not ready") }
        kill(berth, SIGUSR1)
        XCTAssertNil(run.readLine(timeout: 0.5))
        kill(berth, SIGKILL)
        run.wait()
    }

    func test_rewritten_signals_are_forwarded_as_their_replacement_or_dropped() throws {
        let run = try Subprocess(asPID1(["-r", "TERM:USR2", "--rewrite", "HUP:0", "--", kit, "print-signals", "\(SIGKILL)", "30"]))
        guard run.readLine() != nil, let berth = childOf(run.pid) else { return XCTFail("not ready") }
        kill(berth, SIGTERM)
        XCTAssertEqual(run.readLine(), "\(SIGUSR2)")
        kill(berth, SIGHUP)
        kill(berth, SIGWINCH)
        XCTAssertEqual(run.readLine(), "\(SIGWINCH)")
        kill(berth, SIGKILL)
        run.wait()
    }

    func test_parent_death_signal_reaches_the_child() throws {
        // sh starts berth in the background and exits: berth's parent dies,
        // berth gets SIGUSR1 and forwards it; print-signals stops on it.
        let marker = "/tmp/berth-test-pdeath-\(getpid())"
        defer { unlink(marker) }
        let run = try Subprocess(["sh", "-c", "\(Built.berth) -p USR1 -- sh -c 'exec \(kit) print-signals \(SIGUSR1) 10 > \(marker)' & sleep 0.5"])
        XCTAssertEqual(run.wait(), .exited(0))
        let deadline = now() + 10
        while now() < deadline, !(readText(marker) ?? "").contains("\n\(SIGUSR1)\n") { usleep(20000) }
        XCTAssertTrue((readText(marker) ?? "").contains("\n\(SIGUSR1)\n"))
    }

    func test_bad_input_gets_one_line_naming_the_argument_and_status_2() throws {
        let cases: [([String], [String: String], String)] = [
            (["--bogus", "true"], [:], "'--bogus'"),
            (["-r", "NOPE:1", "true"], [:], "--rewrite 'NOPE:1'"),
            (["-r", "15", "true"], [:], "--rewrite '15'"),
            (["-p", "99", "true"], [:], "--pdeath-signal '99'"),
            (["-e", "256", "true"], [:], "--remap-exit '256'"),
            (["-e", "x", "true"], [:], "--remap-exit 'x'"),
            ([], [:], "missing COMMAND"),
            (["true"], ["BERTH_KILL_GRACE": "soon"], "BERTH_KILL_GRACE='soon'"),
            (["true"], ["BERTH_KILL_GROUP": "maybe"], "BERTH_KILL_GROUP='maybe'"),
            (["true"], ["BERTH_VERBOSITY": "9"], "BERTH_VERBOSITY='9'"),
        ]
        for (arguments, environment, named) in cases {
            let run = try Subprocess([Built.berth] + arguments, environment: environment)
            XCTAssertEqual(run.wait(), .exited(2), "\(arguments) \(environment)")
            XCTAssertTrue(run.errorText.hasPrefix("berth: "), run.errorText)
            XCTAssertTrue(run.errorText.contains(named), "\(run.errorText) does not name \(named)")
            XCTAssertEqual(run.errorText.filter { $0 == "\n" }.count, 1, run.errorText)
        }
    }

    func test_works_without_proc_mounted() throws {
        // A bare chroot has no /proc: berth must still see its own argv.
        let root = try ThrowawayRoot()
        let version = try Subprocess(["/usr/sbin/chroot", root.path, "/berth", "--version"])
        XCTAssertEqual(version.wait(), .exited(0), version.errorText)
        XCTAssertEqual(version.outputText, berthVersionForTests + "\n")
        let run = try Subprocess(["/usr/sbin/chroot", root.path, "/berth", "-e", "3", "--", "/testkit", "zombies", "0"])
        XCTAssertEqual(run.wait(), .exited(0), run.errorText)
        XCTAssertEqual(run.outputText, "zombies 0\n")
    }

    func test_help_and_version_exit_zero() throws {
        let help = try Subprocess([Built.berth, "--help"])
        XCTAssertEqual(help.wait(), .exited(0))
        XCTAssertTrue(help.outputText.contains("--kill-grace"))
        let version = try Subprocess([Built.berth, "--version"])
        XCTAssertEqual(version.wait(), .exited(0))
        XCTAssertEqual(version.outputText, berthVersionForTests + "\n")
    }
}

let berthVersionForTests = "0.1.0"
