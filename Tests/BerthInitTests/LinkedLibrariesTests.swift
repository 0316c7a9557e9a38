import TestSupport
import XCTest

final class LinkedLibrariesTests: XCTestCase {
    /// libcurl (with ~30 libraries of its own) and libargon2 are loaded when
    /// a step needs them; a plain `berth -- cmd` must not map them at start.
    func test_berth_does_not_load_http_or_hashing_libraries_at_start() throws {
        let listing = try Subprocess(["ldd", Built.berth], environment: ["PATH": "/usr/bin:/bin"])
        XCTAssertEqual(listing.wait(), .exited(0))
        XCTAssertTrue(listing.outputText.contains("libc.so.6"), listing.outputText)
        for library in ["libcurl", "libargon2", "libssl", "libsystemd"] {
            XCTAssertFalse(listing.outputText.contains(library), "\(library) is linked: \(listing.outputText)")
        }
    }
}
