import Foundation
import Glibc
import TestSupport
import XCTest

/// /etc/berth/plugins.d, end to end: berth as PID 1 in a throwaway root.
final class DropInStepTests: XCTestCase {
    func report(_ root: ThrowawayRoot) throws -> [[String: Any]] {
        let data = try XCTUnwrap(root.read("/run/berth/provision.json")?.data(using: .utf8))
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        return try XCTUnwrap(json["steps"] as? [[String: Any]])
    }

    func makeRoot(_ scripts: [String: String]) throws -> ThrowawayRoot {
        let root = try ThrowawayRoot()
        XCTAssertEqual(system("mkdir -p '\(root.path)/etc/berth/plugins.d'"), 0)
        for (name, body) in scripts {
            try root.write("/etc/berth/plugins.d/\(name)", "#!/bin/sh\n" + body + "\n", mode: 0o755)
        }
        return root
    }

    func test_drop_ins_run_in_name_order_with_the_environment_and_prefixed_output() throws {
        let root = try makeRoot([
            "20-second": "echo second sees $WORKSPACE_NAME",
            "10-first": "echo first; echo to-stderr >&2",
            "30-fails": "echo giving up; exit 4",
        ])
        try root.write("/etc/berth/plugins.d/40-not-executable", "#!/bin/sh\necho never\n", mode: 0o644)
        let run = try root.berth(["--", "/testkit", "zombies", "0"], environment: ["WORKSPACE_NAME": "demo"])
        XCTAssertEqual(run.wait(timeout: 30), .exited(0), run.errorText)
        let lines = run.errorText.split(separator: "\n").filter { $0.hasPrefix("berth: [plugins.d/") }
        XCTAssertEqual(lines, [
            "berth: [plugins.d/10-first] first",
            "berth: [plugins.d/10-first] to-stderr",
            "berth: [plugins.d/20-second] second sees demo",
            "berth: [plugins.d/30-fails] giving up",
        ])
        // After the built-in steps, in name order.
        let dropIns = try report(root).drop { !($0["name"] as! String).hasPrefix("plugins.d/") }
        XCTAssertEqual(dropIns.map { $0["name"] as? String }, ["plugins.d/10-first", "plugins.d/20-second", "plugins.d/30-fails", "plugins.d/40-not-executable"])
        XCTAssertEqual(dropIns.dropFirst(2).first?["message"] as? String, "exited with status 4")
        XCTAssertEqual(dropIns.last?["status"] as? String, "skipped")
    }

    func test_a_hung_drop_in_is_killed_at_the_timeout_and_the_command_still_starts() throws {
        let root = try makeRoot(["10-hangs": "exec /testkit print-signals 0 60"])
        let started = now()
        let run = try root.berth(["--", "/testkit", "zombies", "0"], environment: ["BERTH_STEP_TIMEOUT": "0.5"])
        XCTAssertEqual(run.wait(timeout: 30), .exited(0), run.errorText)
        XCTAssertLessThan(now() - started, 10)
        XCTAssertEqual(run.outputText, "zombies 0\n")
        let hung = try XCTUnwrap(report(root).first { $0["name"] as? String == "plugins.d/10-hangs" })
        XCTAssertEqual(hung["status"] as? String, "failed")
        // Killed and reaped before the step is reported (its output, relayed
        // when it is reaped, comes first) and so before the command runs.
        let relayed = try XCTUnwrap(run.errorText.range(of: "[plugins.d/10-hangs] ready"), run.errorText)
        let reported = try XCTUnwrap(run.errorText.range(of: "FAILED  plugins.d/10-hangs"), run.errorText)
        XCTAssertLessThan(relayed.lowerBound, reported.lowerBound, run.errorText)
    }

    func test_sigterm_during_provisioning_ends_berth_within_a_second_without_the_command() throws {
        let root = try makeRoot(["10-slow": "exec /testkit print-signals-ignoring-term 60"])
        let run = try root.berth(["--", "/testkit", "env"], environment: [:])
        guard let berth = childOf(run.pid) else { return XCTFail("no berth") }
        usleep(500_000)
        let sent = now()
        kill(berth, SIGTERM)
        XCTAssertEqual(run.wait(timeout: 10), .exited(128 + SIGTERM), run.errorText)
        XCTAssertLessThan(now() - sent, 1.0)
        XCTAssertFalse(run.outputText.contains("PATH="), "the command must not have started")
        XCTAssertTrue(run.errorText.contains("SIGTERM before the command started"), run.errorText)
    }
}
