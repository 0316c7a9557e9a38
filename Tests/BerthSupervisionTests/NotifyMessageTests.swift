@testable import BerthSupervision
import XCTest

final class NotifyMessageTests: XCTestCase {
    func fields(_ text: String) -> [String: String] {
        Array(text.utf8).withUnsafeBytes { NotifySocket.fields(in: $0) }
    }

    func test_a_datagram_reads_into_its_key_value_lines() {
        XCTAssertEqual(fields("READY=1\nSTATUS=serving a=b\n"), ["READY": "1", "STATUS": "serving a=b"])
        XCTAssertEqual(fields("STATUS=no newline at the end"), ["STATUS": "no newline at the end"])
        XCTAssertEqual(fields("\nnot a field\nEMPTY=\n\n"), ["EMPTY": ""], "lines without '=' and empty lines are skipped")
        XCTAssertEqual(fields(""), [:])
        XCTAssertEqual(fields("STATUS=" + String(repeating: "x", count: 4000)).count, 1)
    }
}
