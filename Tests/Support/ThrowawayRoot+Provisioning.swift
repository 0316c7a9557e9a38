import Foundation
import Glibc

extension ThrowawayRoot {
    /// berth as PID 1 here with `environment` (PATH added): it provisions,
    /// then runs `command`; waited for up to `timeout` seconds.
    public func provision(_ environment: [String: String], command: [String] = ["/testkit", "env"], timeout: Double = 30) throws -> Subprocess {
        let run = try berth(["--"] + command, environment: ["PATH": "/usr/bin:/bin"].merging(environment) { $1 })
        run.wait(timeout: timeout)
        return run
    }

    /// provision.json's steps by name, as berth wrote them in `runDirectory`.
    public func provisionedSteps(runDirectory: String = "/run/berth") throws -> [String: [String: Any]] {
        guard let text = read(runDirectory + "/provision.json") else { throw TestFailure("no \(runDirectory)/provision.json in the root") }
        guard let json = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
              let steps = json["steps"] as? [[String: Any]] else { throw TestFailure("provision.json without steps: \(text)") }
        return Dictionary(uniqueKeysWithValues: steps.map { ($0["name"] as? String ?? "", $0) })
    }
}
