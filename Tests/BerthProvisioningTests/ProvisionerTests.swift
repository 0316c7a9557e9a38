import Foundation
import BerthCore
@testable import BerthProvisioning
import TestSupport
import XCTest

final class ProvisionerTests: XCTestCase {
    final class Named: ProvisioningStep {
        let name: String
        let dependencies: [String]
        init(_ name: String, _ dependencies: [String] = []) {
            self.name = name
            self.dependencies = dependencies
        }
        func skipReason(given inputs: StepInputs) -> String? { nil }
        func run(in context: StepContext, done: @escaping (StepOutcome) -> Void) { done(.ok(nil)) }
    }

    func test_dependencies_come_first_and_the_given_order_is_kept_otherwise() throws {
        let ordered = try Provisioner.order([Named("github-auth", ["ssh-keys"]), Named("ssh-keys"), Named("code-server"), Named("sshd", ["ssh-keys"])])
        XCTAssertEqual(ordered.map(\.name), ["ssh-keys", "github-auth", "code-server", "sshd"])
    }

    func test_unknown_dependencies_and_cycles_are_errors_naming_the_steps() {
        XCTAssertThrowsError(try Provisioner.order([Named("a", ["ghost"])])) {
            XCTAssertEqual("\($0)", "step 'a' depends on unknown step 'ghost'")
        }
        XCTAssertThrowsError(try Provisioner.order([Named("a", ["b"]), Named("b", ["a"]), Named("c")])) {
            XCTAssertEqual("\($0)", "steps depend on each other in a cycle: a, b")
        }
    }

    func test_every_outcome_reaches_provision_json_while_signals_are_still_handled() throws {
        let report = "/tmp/berth-provision-\(getpid())/provision.json"
        defer { _ = unlink(report); _ = rmdir("/tmp/berth-provision-\(getpid())") }
        let run = try Subprocess([Built.coreProbe, "provision", report])
        XCTAssertEqual(run.readLine(), "ready")
        // "hung" never finishes by itself: the loop must still answer.
        let sent = now()
        run.signal(SIGUSR1)
        let answer = run.readLine(timeout: 5)
        XCTAssertTrue(answer?.hasPrefix("usr1 ") == true, "no answer while a step hangs: \(answer ?? "nil")")
        XCTAssertLessThan(now() - sent, 1.0)
        XCTAssertEqual(run.readLine(timeout: 10), "done")
        XCTAssertEqual(run.wait(), .exited(0), run.errorText)

        let data = try XCTUnwrap(FileManager.default.contents(atPath: report))
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        XCTAssertEqual(json["healthy"] as? Bool, false)
        let steps = try XCTUnwrap(json["steps"] as? [[String: Any]])
        let byName = Dictionary(uniqueKeysWithValues: steps.map { ($0["name"] as! String, $0) })
        XCTAssertEqual(steps.map { $0["name"] as! String },
                       ["ok-step", "helper-step", "missing-input", "broken", "after-broken", "hung", "disabled-one"])
        XCTAssertEqual(byName["ok-step"]?["status"] as? String, "ok")
        XCTAssertEqual(byName["ok-step"]?["detail"] as? String, "2 keys")
        XCTAssertEqual(byName["helper-step"]?["detail"] as? String, "from-helper")
        XCTAssertEqual(byName["missing-input"]?["reason"] as? String, "SSH_PUBLIC_KEY is not set")
        XCTAssertEqual(byName["broken"]?["message"] as? String, "SSH_PUBLIC_KEY: line 2 is not an OpenSSH public key")
        XCTAssertEqual(byName["after-broken"]?["reason"] as? String, "needs 'broken', which failed")
        XCTAssertEqual(byName["hung"]?["status"] as? String, "failed")
        XCTAssertTrue((byName["hung"]?["message"] as? String)?.hasPrefix("timed out after") == true)
        XCTAssertGreaterThanOrEqual(byName["hung"]?["durationMs"] as? Int ?? 0, 1500)
        XCTAssertEqual(byName["disabled-one"]?["reason"] as? String, "disabled by BERTH_DISABLE")
        XCTAssertTrue(run.errorText.contains("FAILED  broken"), run.errorText)
    }

    func test_json_strings_are_escaped() {
        XCTAssertEqual(JSON.quote("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"")
    }
}
