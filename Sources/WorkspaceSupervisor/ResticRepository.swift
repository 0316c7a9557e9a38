import BerthCore

/// One restic repository the backups go to: on the backup mount, in S3 (or
/// an S3-compatible store) or in Azure Blob Storage. Knows how to call
/// restic on it; never holds a credential anywhere but the helper's
/// environment (AWS and Azure keys, restic's only way to take them) and
/// its standard input (the repository password, as `RESTIC_PASSWORD_FILE=
/// /dev/stdin`): not argv, not a file, not a log line.
public struct ResticRepository: Sendable {
    public enum Kind: String, Sendable { case local, s3, azure }

    public var kind: Kind
    /// restic's `--repo`: a path, `s3:URL`, `azure:CONTAINER:/PREFIX`.
    /// Holds no credential.
    public var location: String
    /// AWS_* or AZURE_* for restic: may hold keys.
    var credentials: [String]
    var password: Secret
    /// restic's cache for a remote repository; nil: `--no-cache`.
    var cacheDirectory: String?

    public init(kind: Kind, location: String, credentials: [String] = [], password: Secret, cacheDirectory: String? = nil) {
        self.kind = kind
        self.location = location
        self.credentials = credentials
        self.password = password
        self.cacheDirectory = cacheDirectory
    }

    /// Found on the supervisor's PATH (Debian's restic in the images).
    static let program = "restic"

    /// restic ARGUMENTS on this repository, at low CPU and I/O priority when
    /// `background` (the daemon's backups; never the user's time).
    func command(_ arguments: [String], timeout: Duration, background: Bool = false) -> HelperCommand {
        var line = [Self.program, "--repo", location]
        line += cacheDirectory.map { ["--cache-dir", $0] } ?? ["--no-cache"]
        line += arguments
        if background { line = ["nice", "-n", "19", "ionice", "-c", "2", "-n", "7"] + line }
        var command = HelperCommand(arguments: line, timeout: timeout)
        command.request.environment = HelperCommand.toolEnvironment() + ["RESTIC_PASSWORD_FILE=/dev/stdin", "HOME=/nonexistent"] + credentials
        command.input = password.bytes + [10]
        return command
    }

    /// What restic said about this repository, in one line without
    /// anything of a credential (restic names the repository, not keys).
    static func failure(_ result: HelperResult) -> String {
        if result.timedOut { return "timed out" }
        if let error = result.spawnError { return "restic: \(error)" }
        return failure(errors: result.standardError, status: result.status)
    }

    static func failure(errors: [UInt8], status: ChildStatus?) -> String {
        let lines = String(decoding: errors, as: UTF8.self).split(separator: "\n")
            .filter { !$0.hasPrefix("{") && !$0.isEmpty }
        // restic ends with "Fatal: ..." when it has one; an unexpected
        // error is its own line followed by a Go stack (frames named
        // "github.com/…", "main.…", "runtime.…", locations indented); a
        // restore that went on past a file says "ignoring error for PATH:
        // ..."; else its last line.
        let isStack = { (line: Substring) in
            line.first == "\t" || line.first == " " || ["github.com/", "main.", "runtime."].contains { line.hasPrefix($0) }
        }
        let stackStart = lines.firstIndex { $0.hasPrefix("github.com/") }
        let beforeStack = stackStart.flatMap { lines[..<$0].last { !isStack($0) } }
        let chosen = lines.first { $0.hasPrefix("Fatal: ") } ?? beforeStack
            ?? lines.first { $0.hasPrefix("ignoring error for ") } ?? lines.last
        return chosen.map { String($0.dropFirst($0.hasPrefix("Fatal: ") ? 7 : 0)) } ?? "restic \(status.map { "\($0)" } ?? "did not run")"
    }

    /// restic's own words for "no repository here yet": its config file is
    /// missing (not unreachable: then init would only fail the same way).
    static func isMissing(_ result: HelperResult) -> Bool {
        let text = String(decoding: result.standardError, as: UTF8.self)
        return text.contains("unable to open config file") && (text.contains("does not exist") || text.contains("no such file or directory"))
    }
}

/// One snapshot as `restic snapshots --json` lists it.
public struct ResticSnapshot: Sendable, Equatable {
    public var id: String
    public var shortID: String
    public var time: String
    public var tags: [String]

    /// The workspace listing's fingerprint the backup was tagged with.
    public var fingerprint: String? {
        tags.first { $0.hasPrefix(Self.fingerprintTag) }.map { String($0.dropFirst(Self.fingerprintTag.count)) }
    }
    static let fingerprintTag = "fingerprint="
    /// Every snapshot the daemon takes carries it; forget acts on it alone.
    static let tag = "berth"

    /// Oldest first, as restic lists them; nil when the output is not its list.
    static func parseList(_ output: [UInt8]) -> [ResticSnapshot]? {
        guard case .array(let items)? = try? JSON.parse(String(decoding: output, as: UTF8.self)) else { return nil }
        return parse(items)
    }

    /// What `forget --json` kept (every group's `keep`, oldest first) and
    /// how many it removed; nil when the output is not its answer.
    static func parseForget(_ output: [UInt8]) -> (kept: [ResticSnapshot], removed: Int)? {
        let lines = String(decoding: output, as: UTF8.self).split(separator: "\n")
        guard let line = lines.first(where: { $0.hasPrefix("[") }), case .array(let groups)? = try? JSON.parse(String(line)) else { return nil }
        var kept: [ResticSnapshot] = []
        var removed = 0
        for group in groups {
            if case .array(let items)? = group["keep"] { kept += parse(items) }
            if case .array(let items)? = group["remove"] { removed += items.count }
        }
        return (kept.sorted { $0.time < $1.time }, removed)
    }

    static func parse(_ items: [JSON]) -> [ResticSnapshot] {
        items.compactMap { item in
            guard let id = item["id"]?.stringValue, let time = item["time"]?.stringValue else { return nil }
            var tags: [String] = []
            if case .array(let values)? = item["tags"] { tags = values.compactMap(\.stringValue) }
            return ResticSnapshot(id: id, shortID: item["short_id"]?.stringValue ?? String(id.prefix(8)), time: time, tags: tags)
        }
    }
}

/// The summary line of `restic backup --json`.
public struct ResticBackupSummary: Sendable, Equatable {
    public var snapshotID: String
    public var filesNew: Int
    public var filesChanged: Int
    public var filesUnmodified: Int
    public var dataAdded: Int
    public var bytesProcessed: Int

    static func parse(_ output: [UInt8]) -> ResticBackupSummary? {
        for line in String(decoding: output, as: UTF8.self).split(separator: "\n").reversed() where line.hasPrefix("{") {
            guard let value = try? JSON.parse(String(line)), value["message_type"]?.stringValue == "summary",
                  let id = value["snapshot_id"]?.stringValue else { continue }
            return ResticBackupSummary(snapshotID: id, filesNew: value["files_new"]?.intValue ?? 0,
                                       filesChanged: value["files_changed"]?.intValue ?? 0,
                                       filesUnmodified: value["files_unmodified"]?.intValue ?? 0,
                                       dataAdded: value["data_added"]?.intValue ?? 0,
                                       bytesProcessed: value["total_bytes_processed"]?.intValue ?? 0)
        }
        return nil
    }
}
