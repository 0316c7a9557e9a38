import BerthCore
import BerthProvisioning
import Glibc

/// One complete snapshot: `<root>/<id>/workspace.tar.gz` and its
/// `manifest.json`. A snapshot is built in `<root>/.partial-<id>` and only
/// renamed to its id once the archive is written, checksummed, read back
/// and the manifest synced, so a directory without a dot is always whole.
public struct SnapshotManifest: Sendable, Equatable {
    public var id: String
    public var createdAt: WallTime
    public var workspace: String
    public var excludes: [String]
    public var sha256: String
    public var bytes: Int
    public var entries: Int
    /// Of the tree's names, types, sizes, times and modes: "unchanged since".
    public var fingerprint: String
    public static let archiveName = "workspace.tar.gz"

    public var json: String {
        "{\n  \"format\": 1,\n  \"id\": \(JSON.quote(id)),\n  \"createdAt\": \(JSON.quote(createdAt.iso8601)),\n"
            + "  \"createdAtMs\": \(createdAt.milliseconds),\n  \"workspace\": \(JSON.quote(workspace)),\n"
            + "  \"excludes\": [\(excludes.map(JSON.quote).joined(separator: ", "))],\n  \"archive\": \(JSON.quote(Self.archiveName)),\n"
            + "  \"sha256\": \(JSON.quote(sha256)),\n  \"bytes\": \(bytes),\n  \"entries\": \(entries),\n  \"fingerprint\": \(JSON.quote(fingerprint))\n}\n"
    }

    public init(id: String, createdAt: WallTime, workspace: String, excludes: [String], sha256: String, bytes: Int, entries: Int, fingerprint: String) {
        self.id = id
        self.createdAt = createdAt
        self.workspace = workspace
        self.excludes = excludes
        self.sha256 = sha256
        self.bytes = bytes
        self.entries = entries
        self.fingerprint = fingerprint
    }

    public init?(json text: String) {
        guard let value = try? JSON.parse(text), value["format"]?.intValue == 1,
              let id = value["id"]?.stringValue, let created = value["createdAtMs"]?.intValue,
              let sha = value["sha256"]?.stringValue, let bytes = value["bytes"]?.intValue else { return nil }
        var excludes: [String] = []
        if case .array(let items)? = value["excludes"] { excludes = items.compactMap(\.stringValue) }
        self.init(id: id, createdAt: WallTime(milliseconds: Int64(created)), workspace: value["workspace"]?.stringValue ?? "",
                  excludes: excludes, sha256: sha, bytes: bytes, entries: value["entries"]?.intValue ?? 0,
                  fingerprint: value["fingerprint"]?.stringValue ?? "")
    }
}

/// The snapshots under SUPERVISOR_BACKUP_MOUNT_PATH.
public struct BackupStore: Sendable {
    public let root: String

    public init(root: String) { self.root = root }

    /// Complete snapshots, oldest first. A snapshot's id is its directory's
    /// name (what restore and retention act on), whatever a copied
    /// manifest says.
    public func snapshots() -> [SnapshotManifest] {
        entries().filter { !$0.hasPrefix(".") }.compactMap { name -> SnapshotManifest? in
            guard var manifest = readFile(root + "/" + name + "/manifest.json", limit: 1 << 20).flatMap({
                SnapshotManifest(json: String(decoding: $0, as: UTF8.self))
            }) else { return nil }
            manifest.id = name
            return manifest
        }.filter { access(archive(of: $0.id), R_OK) == 0 }.sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }
    }

    public func archive(of id: String) -> String { root + "/" + id + "/" + SnapshotManifest.archiveName }

    /// What a SIGKILL mid-backup left behind.
    public func removeIncomplete() {
        for name in entries() where name.hasPrefix(".partial-") || name.hasPrefix(".removing-") { removeFlatDirectory(root + "/" + name) }
    }

    /// Keeps the newest `keepLast`, and of those only the ones younger than
    /// `maxAge`, but never the newest one. Returns the ids removed.
    public func prune(keepLast: Int, maxAge: Duration?, now: WallTime) -> [String] {
        let all = snapshots()
        var removed: [String] = []
        for (index, snapshot) in all.enumerated() where index < all.count - 1 {
            let fromNewest = all.count - index
            let tooMany = fromNewest > keepLast
            let tooOld = maxAge.map { now.milliseconds - snapshot.createdAt.milliseconds > Int64($0.components.seconds) * 1000 } ?? false
            guard tooMany || tooOld else { continue }
            // Renamed first: a half-removed snapshot never looks complete.
            let doomed = root + "/.removing-" + snapshot.id
            guard rename(root + "/" + snapshot.id, doomed) == 0 else { continue }
            removeFlatDirectory(doomed)
            removed.append(snapshot.id)
        }
        return removed
    }

    /// A fresh id from the time, made unique.
    public func newID(at time: WallTime) -> String {
        let base = time.compact
        var id = base
        var suffix = 2
        let existing = Set(entries())
        while existing.contains(id) || existing.contains(".partial-" + id) {
            id = base + "-\(suffix)"
            suffix += 1
        }
        return id
    }

    func entries() -> [String] { directoryNames(root) ?? [] }
}

/// Snapshot directories hold files only.
func removeFlatDirectory(_ path: String) {
    for name in directoryNames(path) ?? [] { unlink(path + "/" + name) }
    rmdir(path)
}

func syncDirectory(_ path: String) {
    let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard fd >= 0 else { return }
    fsync(fd)
    close(fd)
}

/// FNV-1a, 64 bits: enough to notice a changed listing, not a checksum.
func fingerprint(_ bytes: [UInt8]) -> String {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in bytes {
        hash ^= UInt64(byte)
        hash &*= 0x0000_0100_0000_01b3
    }
    let hex = String(hash, radix: 16)
    return String(repeating: "0", count: 16 - hex.count) + hex
}
