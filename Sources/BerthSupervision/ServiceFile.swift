import BerthCore
import Glibc

/// A service definition read from `/etc/berth/services.d/NAME.toml` (the
/// service is named after the file). Every error names the file, the line
/// and the field. See README, "Services".
public enum ServiceFile {
    public struct LoadError: Error, Equatable, CustomStringConvertible {
        public let description: String
    }

    static let fields: Set<String> = [
        "command", "user", "group", "environment", "pass_secrets", "working_dir", "depends_on", "restart",
        "stop_signal", "stop_grace", "critical", "required", "backoff_base", "backoff_cap", "stable_after",
        "crash_limit", "crash_window", "control_by_workspace_user",
        "readiness.tcp", "readiness.command", "readiness.notify", "readiness.timeout",
        "health.command", "health.interval", "health.timeout", "health.retries", "health.restart",
    ]

    /// Every `*.toml` in `directory`, by name; a missing directory is none.
    public static func loadDirectory(_ directory: String) throws(LoadError) -> [ServiceDefinition] {
        let names = (directoryNames(directory) ?? []).filter { $0.hasSuffix(".toml") && !$0.hasPrefix(".") }
        var definitions: [ServiceDefinition] = []
        for name in names.sorted() {
            let path = directory + "/" + name
            guard let bytes = readFile(path, limit: 1 << 20) else {
                throw LoadError(description: "\(path): cannot read: \(String(cString: strerror(errno)))")
            }
            definitions.append(try parse(String(decoding: bytes, as: UTF8.self), name: String(name.dropLast(5)), path: path))
        }
        return definitions
    }

    public static func parse(_ text: String, name: String, path: String) throws(LoadError) -> ServiceDefinition {
        guard !name.isEmpty, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else {
            throw LoadError(description: "\(path): the file name must be NAME.toml with letters, digits, '-' or '_' in NAME")
        }
        let document: TOMLDocument
        do {
            document = try TOMLDocument.parse(text)
        } catch {
            throw LoadError(description: "\(path): \(error)")
        }
        let reader = FieldReader(document: document, path: path)
        for key in document.order where !fields.contains(key) && !key.hasPrefix("environment.") {
            throw reader.failure(key, "unknown field (fields: \(fields.sorted().joined(separator: ", ")))")
        }
        guard let command = try reader.strings("command"), !command.isEmpty, !command[0].isEmpty else {
            throw LoadError(description: "\(path): command: required, an array of strings like [\"/usr/bin/app\", \"--flag\"]")
        }
        var service = ServiceDefinition(name: name, command: command)
        service.user = try reader.string("user")
        service.group = try reader.string("group")
        if let group = service.group {
            // Ignored, the service would run as root with every group.
            guard service.user != nil else { throw reader.failure("group", "needs user (the group of which user's process?)") }
            guard UserAccount.groupID(group) != nil else { throw reader.failure("group", "'\(group)': no such group in /etc/group") }
        }
        service.controlByWorkspaceUser = try reader.boolean("control_by_workspace_user") ?? false
        service.workingDirectory = try reader.string("working_dir")
        service.dependsOn = try reader.strings("depends_on") ?? []
        service.passSecrets = try reader.strings("pass_secrets") ?? []
        service.environment = try reader.environment()
        if let restart = try reader.string("restart") {
            guard let policy = ServiceDefinition.RestartPolicy(rawValue: restart) else {
                throw reader.failure("restart", "expected always, on-failure or never, not '\(restart)'")
            }
            service.restart = policy
        }
        if let signal = try reader.string("stop_signal") {
            guard let number = Signals.parse(signal) else { throw reader.failure("stop_signal", "'\(signal)' is not a signal name") }
            service.stopSignal = number
        }
        service.stopGrace = try reader.seconds("stop_grace") ?? service.stopGrace
        service.critical = try reader.boolean("critical") ?? false
        service.required = try reader.boolean("required") ?? true
        service.backoffBase = try reader.seconds("backoff_base") ?? service.backoffBase
        service.backoffCap = try reader.seconds("backoff_cap") ?? service.backoffCap
        service.stableAfter = try reader.seconds("stable_after") ?? service.stableAfter
        service.crashLimit = try reader.integer("crash_limit", in: 1...1000) ?? service.crashLimit
        service.crashWindow = try reader.seconds("crash_window") ?? service.crashWindow

        let ways = ["readiness.tcp", "readiness.command", "readiness.notify"].filter { document.entries[$0] != nil }
        if ways.count > 1 { throw reader.failure(ways[1], "give one of readiness.tcp, readiness.command, readiness.notify") }
        if let port = try reader.integer("readiness.tcp", in: 1...65535) { service.readiness = .tcp(port: port) }
        if let probe = try reader.strings("readiness.command") {
            guard !probe.isEmpty else { throw reader.failure("readiness.command", "an empty command") }
            service.readiness = .command(probe)
        }
        if try reader.boolean("readiness.notify") == true { service.readiness = .notify }
        service.readinessTimeout = try reader.seconds("readiness.timeout") ?? service.readinessTimeout

        if let probe = try reader.strings("health.command") {
            guard !probe.isEmpty else { throw reader.failure("health.command", "an empty command") }
            var check = ServiceDefinition.HealthCheck(command: probe)
            check.interval = try reader.seconds("health.interval") ?? check.interval
            check.timeout = try reader.seconds("health.timeout") ?? check.timeout
            check.retries = try reader.integer("health.retries", in: 1...100) ?? check.retries
            check.restart = try reader.boolean("health.restart") ?? check.restart
            service.health = check
        } else if let stray = document.order.first(where: { $0.hasPrefix("health.") }) {
            throw reader.failure(stray, "needs health.command")
        }
        return service
    }
}

private struct FieldReader {
    let document: TOMLDocument
    let path: String

    func failure(_ key: String, _ problem: String) -> ServiceFile.LoadError {
        let line = document.entries[key]?.line
        return ServiceFile.LoadError(description: "\(path)\(line.map { ": line \($0)" } ?? ""): \(key): \(problem)")
    }

    func string(_ key: String) throws(ServiceFile.LoadError) -> String? {
        guard let entry = document.entries[key] else { return nil }
        guard case .string(let text) = entry.value else { throw failure(key, "expected a string, not \(entry.value.typeName)") }
        return text
    }

    func strings(_ key: String) throws(ServiceFile.LoadError) -> [String]? {
        guard let entry = document.entries[key] else { return nil }
        guard case .array(let items) = entry.value else { throw failure(key, "expected an array of strings, not \(entry.value.typeName)") }
        var out: [String] = []
        for item in items {
            guard case .string(let text) = item else { throw failure(key, "expected an array of strings, found \(item.typeName)") }
            out.append(text)
        }
        return out
    }

    func boolean(_ key: String) throws(ServiceFile.LoadError) -> Bool? {
        guard let entry = document.entries[key] else { return nil }
        guard case .boolean(let value) = entry.value else { throw failure(key, "expected true or false, not \(entry.value.typeName)") }
        return value
    }

    func integer(_ key: String, in range: ClosedRange<Int>) throws(ServiceFile.LoadError) -> Int? {
        guard let entry = document.entries[key] else { return nil }
        guard case .integer(let value) = entry.value, range.contains(value) else {
            throw failure(key, "expected a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return value
    }

    /// A duration up to a day in the one syntax of every setting: a number
    /// of seconds (`5`, `0.5`) or a string with units (`"500ms"`, `"5m"`).
    func seconds(_ key: String) throws(ServiceFile.LoadError) -> Duration? {
        guard let entry = document.entries[key] else { return nil }
        let value: Duration?
        switch entry.value {
        case .integer(let whole): value = whole >= 0 ? .seconds(whole) : nil
        case .float(let fraction): value = fraction >= 0 && fraction <= 86_400 ? .milliseconds(Int((fraction * 1000).rounded())) : nil
        case .string(let text): value = parseDuration(text)
        default: throw failure(key, "expected a duration, like 5, 0.5 or \"5m\", not \(entry.value.typeName)")
        }
        guard let value, value <= .seconds(86_400) else { throw failure(key, "expected a duration from 0 s to 1 d, like 5, 0.5 or \"5m\"") }
        return value
    }

    /// `environment = { K = "v" }` or an `[environment]` table.
    func environment() throws(ServiceFile.LoadError) -> [String: String] {
        var out: [String: String] = [:]
        if let entry = document.entries["environment"] {
            guard case .table(let members) = entry.value else { throw failure("environment", "expected a table of strings") }
            for (key, value) in members {
                guard case .string(let text) = value else { throw failure("environment", "\(key): expected a string") }
                out[key] = text
            }
        }
        for key in document.order where key.hasPrefix("environment.") {
            out[String(key.dropFirst("environment.".count))] = try string(key)
        }
        return out
    }
}
