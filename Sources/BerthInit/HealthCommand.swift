import BerthCore
import BerthProvisioning
import Glibc

/// `berth health`: 0 and "healthy", or 1 and one line per problem, from
/// the files berth keeps in BERTH_RUN_DIR: a failed provisioning step, a
/// token refresh that keeps failing. Made for Docker's HEALTHCHECK, so it
/// reads files and never talks to PID 1.
enum HealthCommand {
    static func run(arguments: [String], environment: [String: String]) -> Int32 {
        if arguments == ["--help"] || arguments == ["-h"] {
            StandardOutput.write("usage: berth health\nExit 0 when healthy, 1 when not (one line per problem), from BERTH_RUN_DIR (default /run/berth).\n")
            return 0
        }
        guard arguments.isEmpty else {
            StandardError.write("berth health: unexpected argument '\(arguments[0])' (see berth health --help)\n")
            return 2
        }
        let runDirectory = Settings(environment: environment).value("BERTH_RUN_DIR", default: "/run/berth")
        let problems = self.problems(runDirectory: runDirectory)
        if problems.isEmpty {
            StandardOutput.write("healthy\n")
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
            guard case .array(let steps)? = (try? JSON.parse(text))?["steps"] else {
                return ["\(runDirectory)/provision.json: not a provisioning report"]
            }
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
