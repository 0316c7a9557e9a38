import ArgumentParser
import BerthCore

/// `berth status [--json]`: every supervised service and its state, then
/// the provisioning steps (from BERTH_RUN_DIR/provision.json) and the
/// set-up tasks (devcontainer.json's hooks, the dotfiles) with their timings.
struct StatusCommand: Verb {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "List the services berth supervises, the provisioning steps and the set-up tasks.",
        discussion: """
        For each service: state, pid, uptime, restarts, ready, healthy, last exit; each provisioning step: \
        its outcome and time; each set-up task: state, start, time taken, result, processes it left running and \
        when it runs again. Asks the berth running here over BERTH_RUN_DIR/control.sock (default /run/berth); \
        --json gives the same as one array: the services, the set-up tasks ("task": true) and the steps ("step": true).
        """
    )

    @Flag(help: "One JSON document instead of the table.")
    var json = false

    func perform() -> Int32 {
        let runDirectory = Settings(environment: currentEnvironment()).value("BERTH_RUN_DIR", default: "/run/berth")
        switch ControlClient.request(json ? "status --json" : "status", socket: runDirectory + "/control.sock") {
        case .failure(let error):
            StandardError.write("berth status: \(error.message)\n")
            return 1
        case .success(let answer):
            guard answer.ok else {
                StandardError.write("berth status: \(answer.text)")
                return 1
            }
            if json {
                StandardOutput.write(Self.withSteps(answer.text, runDirectory: runDirectory))
                return 0
            }
            // The steps ran before the set-up tasks: their table goes between.
            let parts = answer.text.components(separatedBy: "\nSET-UP")
            let steps = Self.stepsTable(runDirectory: runDirectory).map { "\n" + $0 } ?? ""
            StandardOutput.write(parts[0] + steps + (parts.count > 1 ? "\nSET-UP" + parts[1...].joined(separator: "\nSET-UP") : ""))
            return 0
        }
    }

    /// The services' and tasks' JSON array with the provisioning steps
    /// after them, each `"step": true` with its record from provision.json.
    static func withSteps(_ services: String, runDirectory: String) -> String {
        guard let text = readTextFile(runDirectory + "/provision.json"), case .array(let steps)? = (try? JSON.parse(text))?["steps"],
              !steps.isEmpty, let end = services.lastIndex(of: "]") else { return services }
        let entries = steps.map { step -> String in
            guard case .object(let fields) = step else { return "{}" }
            let members = fields.map { "\(JSON.quote($0.key)): \($0.value.rendered(indent: ""))" }
            return "{" + (members + ["\"step\": true"]).joined(separator: ", ") + "}"
        }
        var before = services[..<end]
        while let last = before.last, last == "\n" || last == " " { before = before.dropLast() }
        return before + (before.hasSuffix("[") ? "" : ",\n ") + entries.joined(separator: ",\n ") + "]\n"
    }

    /// STEP, STATUS, TOOK, DETAIL from the provisioning report; nil without one.
    static func stepsTable(runDirectory: String) -> String? {
        guard let text = readTextFile(runDirectory + "/provision.json"), case .array(let steps)? = (try? JSON.parse(text))?["steps"] else { return nil }
        var rows = [["STEP", "STATUS", "TOOK", "DETAIL"]]
        for step in steps {
            let status = step["status"]?.stringValue ?? "?"
            let detail = step["detail"]?.stringValue ?? step["reason"]?.stringValue ?? step["message"]?.stringValue ?? ""
            rows.append([step["name"]?.stringValue ?? "?", status, step["durationMs"]?.intValue.map { "\($0) ms" } ?? "-",
                         String(detail.unicodeScalars.map { $0.value < 0x20 ? "?" : Character($0) })])
        }
        let widths = (0..<4).map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { index, cell in index == 3 ? cell : cell + String(repeating: " ", count: widths[index] - cell.count + 2) }.joined()
        }.joined(separator: "\n") + "\n"
    }
}
