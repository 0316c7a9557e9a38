import Glibc
import TestSupport
import XCTest

/// The throwaway root's secret scan, which many tests trust to say
/// "nowhere": it finds what is there, and a scan that cannot run throws
/// instead of reading as "nothing found".
final class SecretScanTests: XCTestCase {
    func test_the_scan_finds_a_planted_secret_and_reports_none_when_there_is_none() throws {
        let root = try ThrowawayRoot()
        let secret = "planted-\(Int.random(in: 100_000..<999_999))"
        XCTAssertEqual(try root.files(containing: secret), [])
        try root.write("/home/dev8/planted", "before \(secret) after\n")
        XCTAssertEqual(try root.files(containing: secret), ["/home/dev8/planted"])
    }

    func test_a_scan_that_cannot_run_throws() throws {
        let root = try ThrowawayRoot()
        // grep exits 2 on a tree that is not there: an error, not "no match".
        XCTAssertEqual(system("rm -rf '\(root.path)'"), 0)
        XCTAssertThrowsError(try root.files(containing: "anything"), "a scan of a missing tree read as nothing found")
    }
}
