import Foundation
import Glibc
import XCTest

/// What the suites that run berth over a services.d directory share: a
/// fresh directory per test with `services.d` and a run directory, service
/// files written into it, and the environment that points berth there.
class ServicesDirectoryTestCase: XCTestCase {
    var directory = ""

    override func setUpWithError() throws {
        directory = "/tmp/berth-services-\(getpid())-\(Int.random(in: 0..<1_000_000))"
        XCTAssertEqual(mkdir(directory, 0o755), 0)
        XCTAssertEqual(mkdir(directory + "/services.d", 0o755), 0)
        XCTAssertEqual(mkdir(directory + "/run", 0o755), 0)
    }

    override func tearDown() {
        _ = system("rm -rf '\(directory)'")
    }

    func service(_ name: String, _ text: String) throws {
        try text.write(toFile: "\(directory)/services.d/\(name).toml", atomically: true, encoding: .utf8)
    }

    /// PATH, BERTH_SERVICES_DIR and BERTH_RUN_DIR pointing here, then `extra`.
    func servicesEnvironment(_ extra: [String: String] = [:]) -> [String: String] {
        ["PATH": "/usr/bin:/bin", "BERTH_SERVICES_DIR": directory + "/services.d", "BERTH_RUN_DIR": directory + "/run"].merging(extra) { $1 }
    }
}
