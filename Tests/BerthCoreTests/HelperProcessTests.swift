import Glibc
import TestSupport
import XCTest

/// `EventLoop.runHelper`, driven through berth-core-probe.
final class HelperProcessTests: XCTestCase {
    func probe(_ scenario: String) throws -> [String: String] {
        let run = try Subprocess([Built.coreProbe, scenario])
        XCTAssertEqual(run.wait(timeout: 30), .exited(0), run.errorText)
        return run.report
    }

    func test_output_and_status_come_back_although_the_loop_reaps_everything() throws {
        let report = try probe("helper")
        XCTAssertEqual(report["status"], "exited(3)")
        XCTAssertEqual(report["out"], "out")
        XCTAssertEqual(report["err"], "err")
        XCTAssertEqual(report["timedOut"], "false")
    }

    func test_input_is_fed_through_stdin_never_argv() throws {
        XCTAssertEqual(try probe("helper-stdin")["out"], "top secret")
        // A megabyte does not fit a pipe: the loop feeds it as it drains.
        XCTAssertEqual(try probe("helper-big-stdin")["out"], "1048576")
    }

    func test_a_helper_gets_path_alone_never_berths_secrets() throws {
        let report = try probe("helper-environment")
        XCTAssertEqual(report["status"], "exited(0)")
        let variables = (report["out"] ?? "").split(separator: " ").map { $0.split(separator: "=").first.map(String.init) ?? "" }
        XCTAssertFalse(report["out"]?.contains("ghp_probe_secret") ?? true, report["out"] ?? "")
        XCTAssertEqual(Set(variables).subtracting(["PWD", "SHLVL", "_"]), ["PATH"], "sh adds PWD, SHLVL and _ itself")
    }

    func test_timeout_kills_the_helpers_whole_process_group() throws {
        let report = try probe("helper-timeout")
        XCTAssertEqual(report["timedOut"], "true")
        XCTAssertEqual(report["status"], "signaled(9, coreDumped: false)")
        XCTAssertEqual(report["backgroundAlive"], "false")
    }

    func test_missing_program_is_a_spawn_error_not_a_hang() throws {
        let report = try probe("helper-missing")
        XCTAssertEqual(report["spawnError"], "exec \(ENOENT)")
        XCTAssertEqual(report["status"], "none")
    }

    func test_output_beyond_the_limit_is_counted_and_dropped() throws {
        let report = try probe("helper-flood")
        XCTAssertEqual(report["kept"], "\(1 << 20)")
        XCTAssertEqual(report["dropped"], "\(20_000_000 - (1 << 20))")
        XCTAssertEqual(report["status"], "exited(0)")
    }
}
