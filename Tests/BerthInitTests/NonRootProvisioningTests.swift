import Foundation
import Glibc
import TestSupport
import XCTest

/// A container started with `--user 1000`: berth is PID 1 without root.
/// Steps that need root say so and skip; the user's own files still come.
final class NonRootProvisioningTests: XCTestCase {
    func test_steps_that_need_root_skip_with_the_reason_and_the_rest_work() throws {
        let github = try FakeGitHub()
        github.users(["ghp_nonroot": ("octocat", 7, nil, nil)])
        let root = try ThrowawayRoot(withSSH: true, tools: ["/usr/bin/gh", "/usr/bin/git", "/usr/bin/env", "/usr/lib/x86_64-linux-gnu/libcurl.so.4"])
        let keyFile = root.path + "/tmp/key"
        let keygen = try Subprocess(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", keyFile])
        XCTAssertEqual(keygen.wait(), .exited(0))
        let publicKey = try XCTUnwrap(readText(keyFile + ".pub")).trimmingCharacters(in: .newlines)

        let run = try root.berth(["-v", "--", "/testkit", "env"], environment: [
            "PATH": "/usr/bin:/bin", "BERTH_RUN_DIR": "/tmp/berth-run", "SSH_PUBLIC_KEY": publicKey,
            "GITHUB_TOKEN": "ghp_nonroot", "GITHUB_API_URL": github.url, "GH_HOST": "github.com", "OPENAI_API_KEY": "sk-test",
        ], user: "1000:1000")
        XCTAssertEqual(run.wait(timeout: 30), .exited(0), run.errorText)
        let steps = try root.provisionedSteps(runDirectory: "/tmp/berth-run")
        XCTAssertEqual(steps["sshd"]?["reason"] as? String, "needs root to write /etc/ssh")
        for name in ["ssh-keys", "github-auth", "ai-cli"] {
            XCTAssertEqual(steps[name]?["status"] as? String, "ok", "\(name): \(steps[name] ?? [:])")
        }
        XCTAssertNil(root.status("/etc/ssh/sshd_config.d/berth.conf"))
        for file in ["/home/dev8/.ssh/authorized_keys", "/home/dev8/.config/gh/hosts.yml", "/home/dev8/.config/berth/ai-cli.env"] {
            XCTAssertEqual(root.status(file)?.st_uid, 1000, file)
        }
        XCTAssertTrue(run.errorText.contains("sshd") && run.errorText.contains("needs root"), "the summary shows why: \(run.errorText)")
    }
}
