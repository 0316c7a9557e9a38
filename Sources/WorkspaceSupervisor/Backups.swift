import BerthCore
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

/// Why the snapshot store (or a snapshot in it) is not used.
public struct BackupStoreError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The snapshots under SUPERVISOR_BACKUP_MOUNT_PATH, through one directory
/// descriptor opened without following a symlink and checked: owned by a
/// trusted uid and writable by nobody else. Whoever can write the store can
/// swap an archive for one restore will unpack, so every later access is
/// relative to that descriptor (openat, mkdirat, renameat, unlinkat) and a
/// path swapped after the check changes nothing.
public final class BackupStore {
    public let root: String
    let fd: Int32
    let trustedOwners: [uid_t]

    /// `trustedOwners`: root, the daemon's own uid, and for restore the
    /// supervisor's user; the first non-root one is named in errors.
    /// `create`: make a missing store (mode 0700, so ours).
    public init(opening root: String, trustedOwners: [uid_t], create: Bool) throws(BackupStoreError) {
        self.root = root
        self.trustedOwners = trustedOwners
        var fd = Glibc.open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if fd < 0 && errno == ENOENT && create {
            if !makeDirectories(root) {
                throw BackupStoreError("SUPERVISOR_BACKUP_MOUNT_PATH=\(root): cannot create: \(String(cString: strerror(errno)))")
            }
            fd = Glibc.open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        }
        guard fd >= 0 else {
            let reason = openFailure(root)
            throw BackupStoreError("SUPERVISOR_BACKUP_MOUNT_PATH=\(root): \(reason); \(Self.expectation(trustedOwners))")
        }
        if let problem = Self.problem(fd, trustedOwners) {
            close(fd)
            throw BackupStoreError("SUPERVISOR_BACKUP_MOUNT_PATH=\(root): \(problem); \(Self.expectation(trustedOwners))")
        }
        self.fd = fd
    }

    deinit { close(fd) }

    /// For `list` and `restore`, often run by root: root, ourselves, and
    /// the supervisor's user (`SUPERVISOR_USER`, default berth-supervisor,
    /// who owns the store the daemon writes) unless it is `excluding` (the
    /// workspace user: a store of theirs is exactly what must not be trusted).
    public static func ownersTrustedByCommands(environment: [String: String], excluding untrusted: uid_t? = nil,
                                               passwdFile: String = "/etc/passwd", groupFile: String = "/etc/group") -> [uid_t] {
        var trusted: [uid_t] = [0]
        if geteuid() != 0 { trusted.append(geteuid()) }
        let name = environment["SUPERVISOR_USER"].flatMap { $0.isEmpty ? nil : $0 } ?? "berth-supervisor"
        if let supervisor = try? UserAccount.lookup(name, passwdFile: passwdFile, groupFile: groupFile), supervisor.uid != untrusted {
            trusted.insert(supervisor.uid, at: 0)
        }
        return trusted
    }

    static func expectation(_ trusted: [uid_t]) -> String {
        let owner = trusted.first { $0 != 0 } ?? 0
        return "it must belong to the supervisor's user (uid \(owner)) and not be writable by others, or the workspace user could rewrite snapshots"
    }

    /// nil when the open directory `fd` is owned by a trusted uid and not
    /// writable by group or others.
    static func problem(_ fd: Int32, _ trusted: [uid_t]) -> String? {
        var info = stat()
        guard fstat(fd, &info) == 0 else { return "cannot stat: \(String(cString: strerror(errno)))" }
        guard trusted.contains(info.st_uid) else { return "owned by uid \(info.st_uid)" }
        guard info.st_mode & 0o022 == 0 else { return "mode \(String(info.st_mode & 0o7777, radix: 8)) lets group or others write" }
        return nil
    }

    /// Complete snapshots, oldest first. A snapshot's id is its directory's
    /// name (what restore and retention act on), whatever a copied
    /// manifest says.
    public func snapshots() -> [SnapshotManifest] {
        entries().filter { !$0.hasPrefix(".") }.compactMap { name -> SnapshotManifest? in
            guard var manifest = readManifest(name) else { return nil }
            manifest.id = name
            return manifest
        }.filter { hasArchive($0.id) }.sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }
    }

    func readManifest(_ id: String) -> SnapshotManifest? {
        let directory = openat(fd, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard directory >= 0 else { return nil }
        defer { close(directory) }
        let file = openat(directory, "manifest.json", O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard file >= 0 else { return nil }
        defer { close(file) }
        return readAll(file, limit: 1 << 20).flatMap { SnapshotManifest(json: String(decoding: $0, as: UTF8.self)) }
    }

    func hasArchive(_ id: String) -> Bool {
        var info = stat()
        return fstatat(fd, id + "/" + SnapshotManifest.archiveName, &info, AT_SYMLINK_NOFOLLOW) == 0 && info.st_mode & S_IFMT == S_IFREG
    }

    /// A path to `name` in snapshot `id` that goes through the store's
    /// descriptor, for code that wants a path (libcurl's upload file).
    public func path(of id: String, _ name: String) -> String { "/proc/self/fd/\(fd)/\(id)/\(name)" }

    /// What a SIGKILL mid-backup left behind.
    public func removeIncomplete() {
        for name in entries() where name.hasPrefix(".partial-") || name.hasPrefix(".removing-") { removeFlatDirectory(name) }
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
            let doomed = ".removing-" + snapshot.id
            guard renameat(fd, snapshot.id, fd, doomed) == 0 else { continue }
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

    /// `.partial-ID`, made private and opened; the caller closes it.
    func makePartial(_ id: String) throws(BackupStoreError) -> Int32 {
        let name = ".partial-" + id
        guard mkdirat(fd, name, 0o700) == 0 else { throw BackupStoreError("\(root)/\(name): cannot create: \(String(cString: strerror(errno)))") }
        let directory = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard directory >= 0 else { throw BackupStoreError("\(root)/\(name): cannot open: \(String(cString: strerror(errno)))") }
        return directory
    }

    /// The rename that makes `.partial-ID` a whole snapshot, then synced.
    func publish(_ id: String) throws(BackupStoreError) {
        guard renameat(fd, ".partial-" + id, fd, id) == 0 else {
            throw BackupStoreError("\(root)/.partial-\(id): cannot rename: \(String(cString: strerror(errno)))")
        }
        fsync(fd)
    }

    /// Snapshot directories hold files only.
    func removeFlatDirectory(_ name: String) {
        let directory = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if directory >= 0 {
            for entry in directoryNames(in: directory) { unlinkat(directory, entry, 0) }
            close(directory)
        }
        unlinkat(fd, name, AT_REMOVEDIR)
    }

    func entries() -> [String] { directoryNames(in: fd) }
}

/// Why `open(path, O_DIRECTORY | O_NOFOLLOW)` just failed: Linux says
/// ENOTDIR (not ELOOP) for a symlink there, so lstat tells them apart.
func openFailure(_ path: String) -> String {
    let failure = errno
    var info = stat()
    if lstat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFLNK { return "is a symbolic link" }
    return failure == ENOTDIR ? "is not a directory" : String(cString: strerror(failure))
}

/// mkdir -p for the backup root; an existing one keeps its owner and mode
/// (a mounted volume's), unlike AtomicFile.ensureDirectory.
func makeDirectories(_ path: String) -> Bool {
    var prefix = ""
    for part in path.split(separator: "/") {
        prefix += "/" + part
        if mkdir(prefix, 0o700) != 0 && errno != EEXIST { return false }
    }
    return true
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
