import ArgumentParser
import BerthCore
import Glibc

/// `berth health`: 0 and "healthy", or 1 and one line per problem: a failed
/// provisioning step or a token refresh that keeps failing (from the files
/// berth keeps in BERTH_RUN_DIR), and a required service not ready, failed
/// or unhealthy (asked over the control socket). Docker's HEALTHCHECK.
struct HealthCommand: Verb {
    static let configuration = CommandConfiguration(
        commandName: "health",
        abstract: "Exit 0 when the workspace is healthy, 1 when not (one line per problem).",
        discussion: """
        Unhealthy: provisioning not finished or a step failed, a token refresh \
        that keeps failing, a required service not ready or unhealthy. Read from \
        BERTH_RUN_DIR (default /run/berth). Made for Docker's HEALTHCHECK CMD berth health.
        """
    )

    func perform() -> Int32 {
        let runDirectory = Settings(environment: currentEnvironment()).value("BERTH_RUN_DIR", default: "/run/berth")
        var problems = Self.problems(runDirectory: runDirectory)
        var notes: [String] = []
        // Services, when this berth supervises some: asked live. Set-up
        // tasks running or failed come as notes: they do not make the
        // container unhealthy (unless BERTH_STRICT, then as problems).
        let socket = runDirectory + "/control.sock"
        if access(socket, F_OK) == 0 {
            switch ControlClient.request("health", socket: socket) {
            case .success(let answer):
                for line in answer.text.split(separator: "\n").map(String.init) {
                    if line.hasPrefix("note: ") { notes.append(String(line.dropFirst(6))) } else { problems.append(line) }
                }
            case .failure(let error): problems.append(error.message)
            }
        }
        if problems.isEmpty {
            let settingUp = notes.contains { $0.hasPrefix("setting up: ") }
            StandardOutput.write((settingUp ? "healthy, setting up\n" : "healthy\n") + notes.map { "  \($0)\n" }.joined())
            return 0
        }
        StandardOutput.write("unhealthy\n" + problems.map { "  \($0)\n" }.joined())
        return 1
    }

    static func problems(runDirectory: String) -> [String] {
        var problems: [String] = []
        let refreshPath = runDirectory + "/token-refresh.json"
        let refresh = readTextFile(refreshPath).map { text in Result { () throws(JSON.ParseError) in try JSON.parse(text) } }
        if let text = readTextFile(runDirectory + "/provision.json") {
            let report = try? JSON.parse(text)
            guard case .array(let steps)? = report?["steps"] else {
                return ["\(runDirectory)/provision.json: not a provisioning report"]
            }
            if report?["finishedAt"] == .null { problems.append("provisioning has not finished") }
            for step in steps where step["status"]?.stringValue == "failed" {
                let name = step["name"]?.stringValue ?? "?"
                // The refresher's own record, kept current, supersedes its start.
                if name == "token-refresh", case .success? = refresh { continue }
                problems.append("provisioning step \(name) failed: \(step["message"]?.stringValue ?? "")")
            }
        }
        switch refresh {
        case .failure?:
            problems.append("\(refreshPath): unreadable")
        case .success(let state)? where state["healthy"] != .bool(true):
            let failures = state["consecutiveFailures"]?.intValue ?? 0
            let error = state["lastError"]?.stringValue ?? "unknown error"
            problems.append("token-refresh: \(failures) failed attempt\(failures == 1 ? "" : "s") in a row, last: \(error)")
        default:
            break
        }
        return problems
    }
}
