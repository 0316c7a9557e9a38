@testable import BerthCore
import Glibc
import SystemPackage
import XCTest

final class RetryingOnInterruptTests: XCTestCase {
    func test_an_interrupted_call_is_made_again_until_it_answers() throws {
        var calls = 0
        let result = try retryingOnInterrupt { () -> Int32 in
            calls += 1
            if calls < 3 {
                errno = EINTR
                return -1
            }
            return 7
        }
        XCTAssertEqual(result, 7)
        XCTAssertEqual(calls, 3)
    }

    func test_any_other_failure_is_thrown_as_errno_after_one_call() {
        var calls = 0
        XCTAssertThrowsError(try retryingOnInterrupt { () -> Int in
            calls += 1
            errno = EAGAIN
            return -1
        }) { error in
            XCTAssertEqual(error as? Errno, .resourceTemporarilyUnavailable)
        }
        XCTAssertEqual(calls, 1)
    }

    func test_a_real_interrupted_wait_is_resumed() throws {
        // waitpid on a child that exits: the answer is its pid, however
        // often the wait is interrupted on the way.
        let pid = fork()
        if pid == 0 { _exit(3) }
        var status: Int32 = 0
        XCTAssertEqual(try retryingOnInterrupt { waitpid(pid, &status, 0) }, pid)
        XCTAssertEqual(ChildStatus(waitStatus: status), .exited(3))
    }

    /// Every EINTR comparison in berth lives in `RetryingOnInterrupt.swift`
    /// (reads, writes and opens retry inside swift-system's FileDescriptor).
    /// The exceptions are C that cannot call Swift.
    func test_eintr_is_compared_in_exactly_one_place() throws {
        let root = String(#filePath.dropLast("Tests/BerthCoreTests/RetryingOnInterruptTests.swift".count))
        let allowed: Set<String> = [
            "Sources/BerthCore/RetryingOnInterrupt.swift",
            // The child between vfork and exec: no Swift may run there.
            "Sources/CBerth/spawn.c",
            // libcurl's worker thread, all C.
            "Sources/CBerthHTTP/http.c",
        ]
        let command = "cd '\(root)' && grep -rlE --include='*.swift' --include='*.c' --include='*.h' "
            + "'(==|!=) *EINTR|EINTR *(==|!=)|\\.interrupted\\b' Sources plugins; echo \"grep-status=$?\""
        guard let pipe = popen(command, "r") else { return XCTFail("popen: \(Errno(rawValue: errno))") }
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let got = fread(&buffer, 1, buffer.count, pipe)
            if got == 0 { break }
            output += buffer[0..<got]
        }
        pclose(pipe)
        var lines = String(decoding: output, as: UTF8.self).split(separator: "\n").map(String.init)
        // 0: matches found. 1 (none) or 2 (an error) means the check did not
        // run: the helper itself must always be found.
        XCTAssertEqual(lines.popLast(), "grep-status=0", "grep did not run over \(root)")
        XCTAssertTrue(lines.contains("Sources/BerthCore/RetryingOnInterrupt.swift"), "\(lines)")
        XCTAssertEqual(lines.filter { !allowed.contains($0) }, [], "EINTR handled outside retryingOnInterrupt")
    }
}
