import Glibc
import TestSupport
import XCTest

/// berth invoked as `dumb-init`: setsid mode, rewrites, self-suspension,
/// debug lines and exit codes as dumb-init has them.
final class DumbInitFaceTests: XCTestCase {
    let dumbInit = CompatibilityNames.dumbInit
    let kit = Built.testkit

    func env(_ extra: [String: String] = [:]) -> [String: String] {
        ["PATH": "/usr/bin:/bin", "DUMB_INIT_DEBUG": "", "DUMB_INIT_SETSID": ""].merging(extra) { $1 }
    }

    func test_exit_status_and_128_plus_signal() throws {
        for setsid in ["1", "0"] {
            for code in [0, 2, 127, 255] {
                let run = try Subprocess([dumbInit, "sh", "-c", "exit \(code)"], environment: env(["DUMB_INIT_SETSID": setsid]))
                XCTAssertEqual(run.wait(), .exited(Int32(code)))
            }
            for signal in [SIGTERM, SIGHUP, SIGQUIT, SIGKILL] {
                let run = try Subprocess([dumbInit, "sh", "-c", "kill -\(signal) $$"], environment: env(["DUMB_INIT_SETSID": setsid]))
                XCTAssertEqual(run.wait(), .exited(128 + signal))
            }
        }
    }

    func test_setsid_mode_makes_the_child_a_session_leader() throws {
        // Field 6 of /proc/PID/stat is the session id.
        let script = "set -- $(cat /proc/$$/stat); [ \"$6\" = \"$$\" ] && echo leader || echo member"
        let setsid = try Subprocess([dumbInit, "sh", "-c", script], environment: env())
        setsid.wait()
        XCTAssertEqual(setsid.outputText, "leader\n")
        let single = try Subprocess([dumbInit, "--single-child", "sh", "-c", script], environment: env())
        single.wait()
        XCTAssertEqual(single.outputText, "member\n")
    }

    func test_rewrites_forward_the_replacement_and_zero_drops() throws {
        let run = try Subprocess([dumbInit, "-r", "15:2", "-r", "28:0", "--rewrite", "1:31", kit, "print-signals", "\(SIGUSR1)", "20"],
                                 environment: env())
        XCTAssertNotNil(run.readLine())
        run.signal(SIGTERM)
        XCTAssertEqual(run.readLine(), "\(SIGINT)")
        run.signal(SIGWINCH)
        run.signal(SIGHUP)
        XCTAssertEqual(run.readLine(), "31")
        run.signal(SIGUSR1)
        XCTAssertEqual(run.readLine(), "\(SIGUSR1)")
        run.wait()
    }

    func test_bad_rewrites_and_options_fail_with_status_1() throws {
        for bad in [["-r"], ["-r", ""], ["-r", "herp"], ["-r", "15"], ["-r", "15::12"], ["-r", "15:12", "-r", "1:32"]] {
            let run = try Subprocess([dumbInit] + bad + ["echo", "hi"], environment: env())
            XCTAssertEqual(run.wait(), .exited(1), "\(bad)")
            if bad != ["-r"] {
                XCTAssertTrue(run.errorText.hasPrefix("Usage: -r option takes <signum>:<signum>"), run.errorText)
            }
        }
        let unknown = try Subprocess([dumbInit, "--yolo", "/bin/true"], environment: env())
        XCTAssertEqual(unknown.wait(), .exited(1))
        XCTAssertTrue(unknown.errorText.hasSuffix("unrecognized option '--yolo'\n"), unknown.errorText)
        let nothing = try Subprocess([dumbInit], environment: env())
        XCTAssertEqual(nothing.wait(), .exited(1))
        XCTAssertTrue(nothing.errorText.hasSuffix("Try \(dumbInit) --help for full usage.\n"), nothing.errorText)
    }

    func test_version_and_help_go_to_stderr_and_exit_zero() throws {
        let version = try Subprocess([dumbInit, "-V"], environment: env())
        XCTAssertEqual(version.wait(), .exited(0))
        XCTAssertEqual(version.errorText, "dumb-init v1.2.5\n")
        let help = try Subprocess([dumbInit, "--help"], environment: env())
        XCTAssertEqual(help.wait(), .exited(0))
        XCTAssertTrue(help.errorText.contains("--single-child"))
    }

    func test_bad_exec_exits_2_with_dumb_init_message() throws {
        for arguments in [["/doesnotexist"], ["--", "/doesnotexist"], ["-c", "/doesnotexist"]] {
            let run = try Subprocess([dumbInit] + arguments, environment: env())
            XCTAssertEqual(run.wait(), .exited(2))
            XCTAssertTrue(run.errorText.contains("[dumb-init] /doesnotexist: No such file or directory\n"), run.errorText)
        }
    }

    func test_verbose_output_tells_the_story_in_order() throws {
        let run = try Subprocess([dumbInit, "-v", "-c", "echo", "oh,", "hi"], environment: env())
        XCTAssertEqual(run.wait(), .exited(0))
        XCTAssertEqual(run.outputText, "oh, hi\n")
        let lines = run.errorText.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 5, run.errorText)
        XCTAssertTrue(lines[0].hasPrefix("[dumb-init] Child spawned with PID "))
        XCTAssertEqual(lines[1], "[dumb-init] Received signal 17.")
        XCTAssertTrue(lines[2].hasSuffix(" exited with exit status 0."))
        XCTAssertEqual(lines[3], "[dumb-init] Forwarded signal 15 to children.")
        XCTAssertEqual(lines[4], "[dumb-init] Child exited with status 0. Goodbye.")
    }

    func test_sigterm_in_setsid_mode_reaches_the_whole_session() throws {
        let run = try Subprocess([dumbInit, "sh", "-c", "\(kit) print-signals 0 30 & wait"], environment: env())
        let ready = run.readLine()
        // print-signals survives SIGTERM by design: end it when done.
        defer { if let pid = ready.flatMap({ pid_t($0.split(separator: " ").last ?? "") }) { kill(pid, SIGKILL) } }
        XCTAssertNotNil(ready)
        run.signal(SIGTERM)
        XCTAssertEqual(run.readLine(), "\(SIGTERM)", "the grandchild did not get SIGTERM")
        XCTAssertEqual(run.wait(), .exited(128 + SIGTERM))
    }

    func test_remaining_processes_get_sigterm_when_the_child_exits_in_setsid_mode() throws {
        let run = try Subprocess([dumbInit, "sh", "-c", "\(kit) print-signals \(SIGTERM) 30 & sleep 0.5"], environment: env())
        XCTAssertEqual(run.wait(), .exited(0))
        var line = run.readLine(timeout: 5)
        if line?.hasPrefix("ready") == true { line = run.readLine(timeout: 5) }
        XCTAssertEqual(line, "\(SIGTERM)", "the orphaned grandchild did not get SIGTERM")
    }

    func test_job_control_signals_suspend_child_and_dumb_init_then_cont_resumes() throws {
        let run = try Subprocess([dumbInit, kit, "print-signals", "0", "30"], environment: env())
        guard let ready = run.readLine(), let child = pid_t(ready.split(separator: " ").last ?? "") else {
            return XCTFail("not ready")
        }
        for signal in [SIGTSTP, SIGTTOU, SIGTTIN] {
            run.signal(signal)
            XCTAssertTrue(waitForState(run.pid, "T") && waitForState(child, "T"), "\(signal) did not stop both")
            run.signal(SIGCONT)
            XCTAssertEqual(run.readLine(), "\(SIGCONT)")
            XCTAssertTrue(waitForState(run.pid, notIn: "Tt"), "dumb-init did not resume")
        }
        run.signal(SIGKILL)
        kill(child, SIGKILL)
        run.wait()
    }

    func test_first_sighup_and_sigcont_after_detaching_the_terminal_are_ignored() throws {
        let pty = try PseudoTerminal()
        let run = try Subprocess([dumbInit, "-v", "sleep", "20"], environment: env(), terminal: pty)
        XCTAssertNotNil(pty.read(until: "Child spawned"))
        usleep(300_000)
        run.signal(SIGHUP)
        let output = pty.read(until: "Goodbye.", timeout: 10) ?? ""
        XCTAssertTrue(output.contains("Ignoring tty hand-off signal \(SIGHUP)."), output)
        XCTAssertTrue(output.contains("Ignoring tty hand-off signal \(SIGCONT)."), output)
        XCTAssertTrue(output.contains("Forwarded signal \(SIGHUP) to children."), output)
        XCTAssertFalse(output.contains("Forwarded signal \(SIGCONT) to children."), output)
        run.wait()
    }

    func test_child_gets_the_controlling_terminal_and_job_control() throws {
        // bash asked for job control (-m) turns it on only with a controlling
        // terminal it can take the foreground of; +m is the control that
        // shows the flag is read from the right place.
        for (option, jobControl) in [("-m", true), ("+m", false)] {
            let pty = try PseudoTerminal()
            let run = try Subprocess([dumbInit, "bash", "--norc", option, "-c", "echo flags=[$-]; echo end-of-flags"], environment: env(), terminal: pty)
            let output = try XCTUnwrap(pty.read(until: "end-of-flags\r\n"), "bash \(option) printed nothing")
            XCTAssertEqual(run.wait(), .exited(0), option)
            // Exactly one line `flags=[...]`, nothing else on it, letters only.
            let printed = output.components(separatedBy: "\r\n").filter { $0.hasPrefix("flags=[") }
            XCTAssertEqual(printed.count, 1, "one flags line: \(output)")
            let line = try XCTUnwrap(printed.first, output)
            XCTAssertTrue(line.hasSuffix("]"), "the flags line ends at the bracket: \(line)")
            let flags = line.dropFirst("flags=[".count).dropLast()
            XCTAssertTrue(!flags.isEmpty && flags.allSatisfy { $0.isASCII && $0.isLetter }, "$- is a set of option letters: \(line)")
            XCTAssertEqual(flags.contains("m"), jobControl, "bash \(option): job control (m) in $- '\(flags)'")
            XCTAssertEqual(flags.contains("c"), true, "bash ran the -c command: $- '\(flags)'")
            XCTAssertFalse(output.contains("no job control"), output)
            XCTAssertFalse(output.contains("cannot set terminal process group"), output)
        }
    }

    private func waitForState(_ pid: pid_t, _ state: Character) -> Bool {
        waitForState(pid) { $0 == state }
    }

    private func waitForState(_ pid: pid_t, notIn states: String) -> Bool {
        waitForState(pid) { !states.contains($0) }
    }

    private func waitForState(_ pid: pid_t, _ matches: (Character) -> Bool) -> Bool {
        let deadline = now() + 3
        while now() < deadline {
            if let stat = readText("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")"),
               matches(stat[stat.index(close, offsetBy: 2)]) {
                return true
            }
            usleep(5000)
        }
        return false
    }
}
