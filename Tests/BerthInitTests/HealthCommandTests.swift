import Foundation
import Glibc
import TestSupport
import XCTest

final class HealthCommandTests: XCTestCase {
    /// A workspace still provisioning is not healthy yet, and says why.
    func test_health_is_not_reported_before_provisioning_has_finished() throws {
        let root = try ThrowawayRoot()
        XCTAssertEqual(system("mkdir -p '\(root.path)/etc/berth/plugins.d'"), 0)
        // A drop-in that takes 2 s (the test kit waiting for a signal that never comes).
        try root.write("/etc/berth/plugins.d/10-slow", "#!/bin/sh\nexec /testkit print-signals 0 2\n", mode: 0o755)
        let run = try root.berth(["--", "/testkit", "zombies", "0"], environment: ["PATH": "/usr/bin:/bin"])
        let deadline = now() + 10
        while root.read("/run/berth/provision.json") == nil, now() < deadline { usleep(20_000) }
        let during = try Subprocess(["/usr/sbin/chroot", root.path, "/berth", "health"], environment: ["PATH": "/usr/bin:/bin"])
        XCTAssertEqual(during.wait(timeout: 10), .exited(1))
        XCTAssertEqual(during.outputText, "unhealthy\n  provisioning has not finished\n")
        XCTAssertEqual(run.wait(timeout: 20), .exited(0), run.errorText)
        let after = try Subprocess(["/usr/sbin/chroot", root.path, "/berth", "health"], environment: ["PATH": "/usr/bin:/bin"])
        XCTAssertEqual(after.wait(timeout: 10), .exited(1), "the drop-in exited 3: failed")
        XCTAssertTrue(after.outputText.contains("provisioning step plugins.d/10-slow failed"), after.outputText)
    }
}
