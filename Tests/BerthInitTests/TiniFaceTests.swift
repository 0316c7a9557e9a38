import Glibc
import TestSupport
import XCTest

/// berth invoked as `tini`: tini's options, variables, messages and codes.
final class TiniFaceTests: XCTestCase {
    let tini = CompatibilityNames.tini
    let kit = Built.testkit

    func test_exit_codes_can_be_remapped_inclusively_and_exclusively() throws {
        for code in [0, 1, 42, 255] {
            let remapped = try Subprocess([tini, "-e", "\(code)", "--", "sh", "-c", "exit \(code)"])
            XCTAssertEqual(remapped.wait(), .exited(0))
            let others = (0...255).filter { $0 != code }.flatMap { ["-e", "\($0)"] }
            // POSIXLY_CORRECT stops getopt at the program, so no -- is needed.
            let kept = try Subprocess([tini] + others + ["sh", "-c", "exit \(code)"],
                                      environment: ["POSIXLY_CORRECT": "1", "PATH": "/usr/bin:/bin"])
            XCTAssertEqual(kept.wait(), .exited(Int32(code)))
        }
    }

    func test_warns_when_it_cannot_reap_and_is_quiet_as_subreaper() throws {
        let warned = try Subprocess([tini, "--", "true"])
        XCTAssertEqual(warned.wait(), .exited(0))
        XCTAssertTrue(warned.errorText.contains("zombie reaping won't work"), warned.errorText)
        XCTAssertTrue(warned.errorText.hasPrefix("[WARN  tini ("), warned.errorText)

        let subreaper = try Subprocess([tini, "-s", "--", "true"])
        XCTAssertEqual(subreaper.wait(), .exited(0))
        XCTAssertEqual(subreaper.errorText, "")

        let byVariable = try Subprocess([tini, "--", "true"], environment: ["TINI_SUBREAPER": ""])
        XCTAssertEqual(byVariable.wait(), .exited(0))
        XCTAssertEqual(byVariable.errorText, "")

        let silenced = try Subprocess([tini, "--", "true"], environment: ["TINI_VERBOSITY": "0"])
        XCTAssertEqual(silenced.wait(), .exited(0))
        XCTAssertEqual(silenced.errorText, "")
    }

    func test_warn_on_reap_names_each_reaped_zombie() throws {
        let run = try Subprocess([tini, "-s", "-w", "--", kit, "orphans", "3"])
        XCTAssertEqual(run.wait(), .exited(0))
        XCTAssertEqual(run.errorText.components("Reaped zombie process with pid="), 3, run.errorText)
    }

    func test_bad_options_are_fatal_with_tinis_messages() throws {
        let badSignal = try Subprocess([tini, "-p", "USR1", "--", "true"])
        XCTAssertEqual(badSignal.wait(), .exited(1))
        XCTAssertTrue(badSignal.errorText.contains("] Not a valid option for -p: USR1"), badSignal.errorText)
        XCTAssertTrue(badSignal.errorText.hasPrefix("[FATAL tini ("), badSignal.errorText)

        let badCode = try Subprocess([tini, "-e", "256", "--", "true"])
        XCTAssertEqual(badCode.wait(), .exited(1))
        XCTAssertTrue(badCode.errorText.contains("Not a valid option for -e: 256"), badCode.errorText)

        let unknown = try Subprocess([tini, "-x", "--", "true"])
        XCTAssertEqual(unknown.wait(), .exited(1))
        XCTAssertTrue(unknown.errorText.contains("invalid option -- 'x'"), unknown.errorText)
        XCTAssertTrue(unknown.errorText.contains("Usage: tini [OPTIONS] PROGRAM -- [ARGS]"), unknown.errorText)

        let nothing = try Subprocess([tini])
        XCTAssertEqual(nothing.wait(), .exited(1))
        XCTAssertTrue(nothing.errorText.contains("Usage: tini"))
    }

    func test_help_license_and_version_exit_zero_on_stdout() throws {
        for arguments in [["-h"], ["-l"], ["--version"]] {
            let run = try Subprocess([tini] + arguments)
            XCTAssertEqual(run.wait(), .exited(0), "\(arguments)")
            XCTAssertFalse(run.outputText.isEmpty, "\(arguments)")
        }
        let version = try Subprocess([tini, "--version"])
        version.wait()
        XCTAssertTrue(version.outputText.hasPrefix("tini version 0.19.0"), version.outputText)
    }

    func test_signals_are_forwarded_and_exit_is_128_plus_n() throws {
        for signal in [SIGTERM, SIGUSR1, SIGUSR2] {
            let run = try Subprocess([tini, "-s", "--", "sh", "-c", "sleep 60 & wait"])
            usleep(200_000)
            run.signal(signal)
            XCTAssertEqual(run.wait(timeout: 10), .exited(128 + signal))
        }
    }

    func test_terminal_stop_signals_are_not_forwarded() throws {
        let run = try Subprocess([tini, "-s", "--", kit, "print-signals", "\(SIGUSR1)", "20"])
        XCTAssertNotNil(run.readLine())
        run.signal(SIGTTIN)
        run.signal(SIGTTOU)
        run.signal(SIGUSR1)
        XCTAssertEqual(run.readLine(), "\(SIGUSR1)", "SIGTTIN/SIGTTOU must not reach the child")
        XCTAssertEqual(run.wait(), .exited(0))
    }

    func test_process_group_option_and_variable_signal_the_group() throws {
        let script = "trap '' USR1; \(kit) print-signals \(SIGUSR1) 30; exit 6"
        for (arguments, environment) in [(["-s", "-g"], [String: String]()), (["-s"], ["TINI_KILL_PROCESS_GROUP": "1"])] {
            var env = environment
            env["PATH"] = "/usr/bin:/bin"
            let run = try Subprocess([tini] + arguments + ["--", "sh", "-c", script], environment: env)
            XCTAssertNotNil(run.readLine())
            run.signal(SIGUSR1)
            XCTAssertEqual(run.wait(timeout: 10), .exited(6), "\(arguments) \(environment)")
        }
    }

    func test_exits_with_the_child_without_waiting_for_other_processes() throws {
        // tini leaves the rest to the kernel; berth's own face would wait.
        // The daemon ignores SIGTERM and lives 60 s: it is still there, not
        // even signalled, once tini has exited with the child's status.
        let pidFile = "/tmp/berth-test-tini-daemon-\(getpid())-\(Int.random(in: 0..<1_000_000))"
        defer { unlink(pidFile) }
        let run = try Subprocess([tini, "-s", "--", "sh", "-c", "\(kit) stubborn-daemon 60 \(pidFile); exit 3"])
        XCTAssertEqual(run.wait(timeout: 20), .exited(3))
        // The daemon writes its pid once it has forked away; bounded wait.
        XCTAssertTrue(eventually(5) { (readText(pidFile) ?? "").hasSuffix("\n") }, "the daemon never wrote its pid")
        let daemon = try XCTUnwrap((readText(pidFile) ?? "").split(separator: "\n").first.flatMap { pid_t($0) })
        defer { kill(daemon, SIGKILL) }
        let stat = try XCTUnwrap(readText("/proc/\(daemon)/stat"), "the daemon was gone when tini had exited")
        let state = stat[stat.index(try XCTUnwrap(stat.lastIndex(of: ")")), offsetBy: 2)]
        XCTAssertTrue("RS".contains(state), "the daemon still runs after tini exited (state \(state))")
    }

    func test_exec_failure_reports_like_tini() throws {
        let run = try Subprocess([tini, "-s", "--", "/nonexistent"])
        XCTAssertEqual(run.wait(), .exited(127))
        XCTAssertTrue(run.errorText.contains("exec /nonexistent failed: No such file or directory"), run.errorText)
    }

    func test_info_level_logs_go_to_stdout() throws {
        let run = try Subprocess([tini, "-s", "-vv", "--", "true"])
        XCTAssertEqual(run.wait(), .exited(0))
        XCTAssertTrue(run.outputText.contains("[INFO  tini ("), run.outputText)
        XCTAssertTrue(run.outputText.contains("Spawned child process 'true' with pid '"), run.outputText)
        XCTAssertTrue(run.outputText.contains("Main child exited normally (with status '0')"), run.outputText)
    }
}

extension String {
    func components(_ needle: String) -> Int {
        var count = 0
        var rest = self[...]
        while let range = rest.firstRange(of: needle) {
            count += 1
            rest = rest[range.upperBound...]
        }
        return count
    }
}
