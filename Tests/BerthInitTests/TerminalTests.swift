import Glibc
import TestSupport
import XCTest

/// berth with a terminal: the child owns the foreground, Ctrl-C and Ctrl-Z
/// reach it, and berth itself is never stopped by the terminal.
final class TerminalTests: XCTestCase {
    let kit = Built.testkit

    func test_child_gets_the_terminal_foreground() throws {
        let pty = try PseudoTerminal()
        let run = try Subprocess([Built.berth, "--", kit, "foreground"], terminal: pty)
        XCTAssertNotNil(pty.read(until: "foreground"), "child was not in the foreground")
        XCTAssertEqual(run.wait(), .exited(0))
    }

    func test_ctrl_c_reaches_the_child_not_berth() throws {
        let pty = try PseudoTerminal()
        let run = try Subprocess([Built.berth, "--", kit, "print-signals", "\(SIGINT)", "20"], terminal: pty)
        XCTAssertNotNil(pty.read(until: "ready"))
        pty.write("\u{03}")
        XCTAssertNotNil(pty.read(until: "\(SIGINT)\r\n"), "Ctrl-C did not reach the child")
        XCTAssertEqual(run.wait(), .exited(0), "berth itself was interrupted")
    }

    func test_ctrl_z_suspends_and_fg_resumes_the_child_under_a_job_control_shell() throws {
        let (pty, shell) = try interactiveShell()
        pty.write("\(Built.berth) -- cat\n")
        XCTAssertNotNil(pty.read(until: "-- cat\r\n"))
        // Typed before cat runs, readline would swallow it without echo.
        usleep(300_000)
        pty.write("hello\n")
        XCTAssertNotNil(pty.read(until: "hello\r\nhello\r\n"), "cat did not echo before suspending")
        pty.write("\u{1a}")
        XCTAssertNotNil(pty.read(until: "Stopped"), "the shell did not see the job stop")
        XCTAssertNotNil(pty.read(until: "sh> "))
        pty.write("fg\n")
        XCTAssertNotNil(pty.read(until: "cat\r\n"))
        usleep(300_000)
        pty.write("world\n")
        XCTAssertNotNil(pty.read(until: "world\r\nworld\r\n"), "cat did not get the terminal back after fg")
        pty.write("\u{04}")
        pty.write("echo status=$?\n")
        XCTAssertNotNil(pty.read(until: "status=0"))
        pty.write("exit\n")
        XCTAssertEqual(shell.wait(timeout: 10), .exited(0))
    }

    func test_as_pid_1_a_child_stopped_by_ctrl_z_is_continued() throws {
        let pty = try PseudoTerminal()
        // bash keeps SIGTSTP's default (it stops) and says when it gets
        // SIGCONT; nothing but berth sends it one here.
        let script = "trap 'echo continued; exit 7' CONT; echo ready; while :; do sleep 0.1; done"
        let run = try Subprocess(asPID1(["-v", "--", "/bin/bash", "-c", script]), environment: ["PATH": "/usr/bin:/bin"], terminal: pty)
        XCTAssertNotNil(pty.read(until: "ready\r\n"), "the child started")
        pty.write("\u{1a}")
        // berth's line and the child's in one stream (the terminal), in the order they were written.
        let output = try XCTUnwrap(pty.read(until: "continued\r\n"), "the stopped child was never continued")
        XCTAssertTrue(output.contains("child stopped by SIGTSTP; PID 1 cannot be suspended, so it is continued"), "berth saw the stop before the child ran on: \(output)")
        XCTAssertEqual(run.wait(timeout: 10), .exited(7), "the continued child's own exit status")
    }

    func test_as_pid_1_a_child_that_stops_itself_with_a_terminal_stop_signal_is_continued() throws {
        // The child, in the terminal's foreground, sends itself the signal
        // (no Ctrl-Z): the kernel stops it, and only berth can continue it.
        for signal in ["TSTP", "TTIN", "TTOU"] {
            let pty = try PseudoTerminal()
            let script = "echo before-stop; kill -\(signal) $$; echo after-continue; exit 7"
            let run = try Subprocess(asPID1(["-v", "--", "/bin/sh", "-c", script]), environment: ["PATH": "/usr/bin:/bin"], terminal: pty)
            // berth's log line and the child's in one stream (the terminal), in the order they were written.
            let output = pty.read(until: "after-continue\r\n") ?? ""
            XCTAssertEqual(run.wait(timeout: 10), .exited(7), "SIG\(signal): the continued child's own exit status: \(output)")
            let lines = output.components(separatedBy: "\r\n")
            let before = try XCTUnwrap(lines.firstIndex(of: "before-stop"), "SIG\(signal): \(output)")
            let stopped = try XCTUnwrap(lines.firstIndex { $0.hasSuffix("child stopped by SIG\(signal); PID 1 cannot be suspended, so it is continued") },
                                        "SIG\(signal): berth saw the child stop: \(output)")
            let after = try XCTUnwrap(lines.firstIndex(of: "after-continue"), "SIG\(signal): the stopped child was never continued: \(output)")
            XCTAssertLessThan(before, stopped, output)
            XCTAssertLessThan(stopped, after, "SIG\(signal): continued by berth, after it saw the stop: \(output)")
        }
    }

    func test_berth_in_the_background_is_not_stopped_by_terminal_output() throws {
        // With TOSTOP a background process writing to the terminal gets
        // SIGTTOU; berth ignores it, so its -v lines cannot stop it.
        let (pty, shell) = try interactiveShell()
        pty.write("stty tostop\n")
        pty.write("\(Built.berth) -vv -- sh -c 'exit 4' 2>/dev/tty & wait $!; echo done=$?\n")
        XCTAssertNotNil(pty.read(until: "done=4", timeout: 10), "berth was stopped in the background")
        pty.write("exit\n")
        shell.wait(timeout: 10)
    }

    /// bash with job control on a fresh pty, at its prompt `sh> `.
    private func interactiveShell() throws -> (PseudoTerminal, Subprocess) {
        let pty = try PseudoTerminal()
        let shell = try Subprocess(["bash", "--norc", "--noprofile", "-i"], environment: ["PATH": "/usr/bin:/bin", "TERM": "dumb"], terminal: pty)
        pty.write("PS1='sh> '\n")
        XCTAssertNotNil(pty.read(until: "sh> "))
        return (pty, shell)
    }
}
