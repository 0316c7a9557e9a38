import Glibc
import TestSupport
import XCTest

/// The loop itself: timers, reaping of processes nobody claimed, and
/// signals handled at once while helpers hang or flood.
final class EventLoopTests: XCTestCase {
    func test_timers_fire_in_deadline_order_and_cancelled_ones_never() throws {
        let run = try Subprocess([Built.coreProbe, "timers"])
        XCTAssertEqual(run.wait(), .exited(0))
        XCTAssertEqual(run.report["order"], "abc")
    }

    func test_orphans_nobody_claimed_are_reaped_and_reported() throws {
        let run = try Subprocess([Built.coreProbe, "unclaimed"])
        XCTAssertEqual(run.wait(), .exited(0))
        XCTAssertEqual(run.report["status"], "exited(0)")
        XCTAssertEqual(run.report["unclaimed"], "5")
    }

    func test_signals_are_handled_while_a_helper_hangs_and_another_floods() throws {
        let run = try Subprocess([Built.coreProbe, "responsive"])
        XCTAssertEqual(run.readLine(), "ready")
        var worst = 0.0
        for _ in 0..<5 {
            let sent = now()
            run.signal(SIGUSR1)
            guard let line = run.readLine(timeout: 5), line.hasPrefix("usr1 "),
                  let handled = Double(line.dropFirst(5)) else { return XCTFail("no answer") }
            worst = max(worst, handled / 1e9 - sent)
            usleep(20_000)
        }
        XCTAssertEqual(run.wait(), .exited(0))
        // A blocked loop would take the hanging helper's 30 s; the bench
        // measures the real latency against tini.
        XCTAssertLessThan(worst, 1.0)
    }
}
