import BerthCore
import Glibc

/// provision.json (for image tests and `berth health`) and the one-screen
/// summary on berth's output. Neither ever holds a secret: outcomes carry
/// messages written by the steps, which name variables, not values.
public enum ProvisionReport {
    public static let defaultPath = "/run/berth/provision.json"

    /// `inputs`: each step's inputs fingerprint (its plugin's variables:
    /// option values, and only whether each secret is set).
    public static func json(_ results: [StepResult], inputs: [String: String] = [:], finishedAt: Int = Int(time(nil))) -> String {
        var out = "{\n  \"finishedAt\": \(finishedAt),\n"
        out += "  \"healthy\": \(!results.contains { $0.outcome.isFailure }),\n"
        out += "  \"steps\": ["
        for (index, result) in results.enumerated() {
            out += index == 0 ? "\n" : ",\n"
            let (status, text): (String, String?) = switch result.outcome {
            case .ok(let detail): ("ok", detail)
            case .skipped(let reason): ("skipped", reason)
            case .failed(let message): ("failed", message)
            }
            out += "    {\"name\": \(JSON.quote(result.name)), \"status\": \"\(status)\""
            if let text {
                out += ", \"\(status == "ok" ? "detail" : status == "skipped" ? "reason" : "message")\": \(JSON.quote(text))"
            }
            out += ", \"durationMs\": \(result.milliseconds), \"startedAt\": \(result.startedAt)"
            if let fingerprint = inputs[result.name] { out += ", \"inputs\": \(JSON.quote(fingerprint))" }
            // Steps converge on what their inputs say at every start.
            out += ", \"runs\": \"every start\"}"
        }
        out += results.isEmpty ? "]\n}\n" : "\n  ]\n}\n"
        return out
    }

    /// Writes the report atomically (0644: it holds no secret).
    public static func write(_ results: [StepResult], inputs: [String: String] = [:], to path: String = defaultPath) throws(AtomicFile.WriteError) {
        let (directory, _) = AtomicFile.split(path)
        try AtomicFile.ensureDirectory(directory, mode: 0o755)
        try AtomicFile.write(Array(json(results, inputs: inputs).utf8), to: path, mode: 0o644)
    }

    /// While the steps run: a report that says so, so `berth health` never
    /// calls a workspace healthy before its provisioning has finished.
    public static func writeInProgress(to path: String = defaultPath) throws(AtomicFile.WriteError) {
        let (directory, _) = AtomicFile.split(path)
        try AtomicFile.ensureDirectory(directory, mode: 0o755)
        try AtomicFile.write(Array("{\n  \"finishedAt\": null,\n  \"healthy\": false,\n  \"steps\": []\n}\n".utf8), to: path, mode: 0o644)
    }

    public static func summary(_ results: [StepResult]) -> String {
        let width = results.map(\.name.count).max() ?? 0
        var lines = ["provisioning:"]
        for result in results {
            let name = result.name + String(repeating: " ", count: width - result.name.count)
            switch result.outcome {
            case .ok(let detail): lines.append("  ok      \(name)  \(result.milliseconds) ms\(detail.map { "  \($0)" } ?? "")")
            case .skipped(let reason): lines.append("  skipped \(name)  \(reason)")
            case .failed(let message): lines.append("  FAILED  \(name)  \(message)")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
