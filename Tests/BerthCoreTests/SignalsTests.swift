@testable import BerthCore
import Glibc
import XCTest

final class SignalsTests: XCTestCase {
    func test_names_numbers_and_prefixes_all_parse() {
        XCTAssertEqual(Signals.parse("TERM"), SIGTERM)
        XCTAssertEqual(Signals.parse("SIGTERM"), SIGTERM)
        XCTAssertEqual(Signals.parse("sigusr1"), SIGUSR1)
        XCTAssertEqual(Signals.parse("15"), 15)
        XCTAssertEqual(Signals.parse("RTMIN"), Signals.realtimeMin)
        XCTAssertEqual(Signals.parse("RTMIN+3"), Signals.realtimeMin + 3)
        XCTAssertEqual(Signals.parse("RTMAX"), Signals.realtimeMax)
    }

    func test_unknown_and_out_of_range_signals_are_rejected() {
        for text in ["", "NOPE", "0", "-1", "32", "65", "RTMIN+99", "SIG", "15x"] {
            XCTAssertNil(Signals.parse(text), text)
        }
    }

    func test_names_round_trip() {
        for number in Int32(1)...31 {
            XCTAssertEqual(Signals.parse(Signals.name(of: number)), number)
        }
        XCTAssertEqual(Signals.name(of: Signals.realtimeMin + 2), "SIGRTMIN+2")
    }

    func test_kernel_raised_and_user_sent_signals_are_told_apart() {
        XCTAssertTrue(ReceivedSignal(number: SIGSEGV, code: 0, senderPID: 5).wasSentByProcess)  // SI_USER
        XCTAssertTrue(ReceivedSignal(number: SIGSEGV, code: -1, senderPID: 5).wasSentByProcess)  // SI_QUEUE
        XCTAssertFalse(ReceivedSignal(number: SIGSEGV, code: 1, senderPID: 0).wasSentByProcess)  // SEGV_MAPERR
    }
}

final class ChildStatusTests: XCTestCase {
    func test_wait_statuses_decode_with_the_shell_exit_code() {
        XCTAssertEqual(ChildStatus(waitStatus: 3 << 8), .exited(3))
        XCTAssertEqual(ChildStatus(waitStatus: 3 << 8).shellExitCode, 3)
        XCTAssertEqual(ChildStatus(waitStatus: SIGKILL), .signaled(SIGKILL, coreDumped: false))
        XCTAssertEqual(ChildStatus(waitStatus: SIGKILL).shellExitCode, 137)
        XCTAssertEqual(ChildStatus(waitStatus: SIGSEGV | 0x80), .signaled(SIGSEGV, coreDumped: true))
        XCTAssertEqual(ChildStatus(waitStatus: (SIGTSTP << 8) | 0x7f), .stopped(SIGTSTP))
        XCTAssertEqual(ChildStatus(waitStatus: 0xffff), .continued)
        XCTAssertFalse(ChildStatus.stopped(SIGTSTP).isTermination)
        XCTAssertTrue(ChildStatus.signaled(SIGTERM, coreDumped: false).isTermination)
    }
}

final class ProcessSweepTests: XCTestCase {
    func test_parent_is_read_after_the_last_parenthesis_of_the_name() {
        XCTAssertEqual(ProcessSweep.parseParent(fromStat: Array("42 (sh) S 7 42 42 0".utf8)), 7)
        XCTAssertEqual(ProcessSweep.parseParent(fromStat: Array("42 (a) b (c) R 9 1".utf8)), 9)
        XCTAssertNil(ProcessSweep.parseParent(fromStat: Array("garbage".utf8)))
    }

    func test_descendants_of_this_process_include_grandchildren() throws {
        // A real tree: sh -> sleep. Both are descendants of this process.
        var request = SpawnRequest(arguments: ["sh", "-c", "sleep 5 & wait"])
        request.isolation = .newProcessGroup
        let shell = try Spawner.spawn(request)
        defer {
            kill(-shell, SIGKILL)
            var status: Int32 = 0
            waitpid(shell, &status, 0)
        }
        var found: [pid_t] = []
        for _ in 0..<200 {
            found = ProcessSweep.descendants(of: getpid())
            if found.count >= 2 && found.contains(shell) { break }
            usleep(10_000)
        }
        XCTAssertTrue(found.contains(shell))
        XCTAssertTrue(found.contains { ProcessSweep.parentPID(of: $0) == shell }, "the grandchild is missing")
    }
}
