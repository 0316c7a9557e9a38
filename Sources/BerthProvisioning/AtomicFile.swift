import BerthCore
import CBerth
import Glibc

/// Writes a file so that, whatever happens (SIGKILL, power loss), readers
/// find the old content or the new one: never a mix, a truncation or nothing.
/// The data goes to a temporary file in the same directory, which gets its
/// final owner and mode, is fsync'ed and renamed over the target; then the
/// directory is fsync'ed so the rename itself is durable.
public enum AtomicFile {
    public enum Outcome: Equatable, Sendable {
        case written
        /// Same bytes, owner and mode were already there: nothing touched,
        /// so a re-run leaves even the timestamps alone.
        case unchanged
    }

    public struct Owner: Equatable, Sendable {
        public var uid: uid_t
        public var gid: gid_t
        public init(uid: uid_t, gid: gid_t) {
            self.uid = uid
            self.gid = gid
        }
    }

    public struct WriteError: Error, CustomStringConvertible {
        public let path: String
        public let operation: String
        public let errno: Int32
        public var description: String { "\(path): \(operation) failed: \(String(cString: strerror(errno)))" }
    }

    @discardableResult
    public static func write(_ bytes: [UInt8], to path: String, mode: mode_t, owner: Owner? = nil) throws(WriteError) -> Outcome {
        let (directory, name) = split(path)
        // The last component of the directory is not followed: a symlink
        // planted where ~/.ssh should be cannot send root's write elsewhere.
        let dirFD = open(directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard dirFD >= 0 else { throw WriteError(path: path, operation: "open directory", errno: errno) }
        defer { close(dirFD) }

        if isAlreadyInPlace(bytes, dirFD: dirFD, name: name, mode: mode, owner: owner) {
            return .unchanged
        }

        removeLeftoverTemporaries(dirFD: dirFD, name: name)
        let temporary = ".\(name).berth-\(randomSuffix())"
        let fd = openat(dirFD, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw WriteError(path: path, operation: "create temporary file", errno: errno) }
        var committed = false
        defer {
            if !committed { unlinkat(dirFD, temporary, 0) }
        }
        let filled = Result<Void, WriteError> { () throws(WriteError) in
            try writeAll(fd, bytes, path: path)
            if let owner, fchown(fd, owner.uid, owner.gid) != 0 {
                throw WriteError(path: path, operation: "chown", errno: errno)
            }
            guard fchmod(fd, mode) == 0 else { throw WriteError(path: path, operation: "chmod", errno: errno) }
            guard fsync(fd) == 0 else { throw WriteError(path: path, operation: "fsync", errno: errno) }
        }
        close(fd)
        try filled.get()
        guard renameat(dirFD, temporary, dirFD, name) == 0 else {
            throw WriteError(path: path, operation: "rename", errno: errno)
        }
        committed = true
        _ = fsync(dirFD)
        return .written
    }

    /// Creates `path` as a directory with this mode and owner, or brings an
    /// existing one to them. Refuses a symlink in its place.
    public static func ensureDirectory(_ path: String, mode: mode_t, owner: Owner? = nil) throws(WriteError) {
        if mkdir(path, mode) != 0 && errno != EEXIST {
            throw WriteError(path: path, operation: "mkdir", errno: errno)
        }
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw WriteError(path: path, operation: "open directory", errno: errno) }
        defer { close(fd) }
        if let owner, fchown(fd, owner.uid, owner.gid) != 0 {
            throw WriteError(path: path, operation: "chown", errno: errno)
        }
        guard fchmod(fd, mode) == 0 else { throw WriteError(path: path, operation: "chmod", errno: errno) }
    }

    public static func split(_ path: String) -> (directory: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        let directory = String(path[..<slash])
        return (directory.isEmpty ? "/" : directory, String(path[path.index(after: slash)...]))
    }

    /// A write killed half-way leaves its temporary file; the next write of
    /// the same file clears it (berth is the only writer of its files).
    private static func removeLeftoverTemporaries(dirFD: Int32, name: String) {
        let copy = dup(dirFD)
        guard copy >= 0, let dir = fdopendir(copy) else { return }
        defer { closedir(dir) }
        let prefix = ".\(name).berth-"
        while let entry = readdir(dir) {
            let entryName = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if entryName.hasPrefix(prefix) { unlinkat(dirFD, entryName, 0) }
        }
    }

    private static func isAlreadyInPlace(_ bytes: [UInt8], dirFD: Int32, name: String, mode: mode_t, owner: Owner?) -> Bool {
        let fd = openat(dirFD, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG,
              info.st_mode & 0o7777 == mode, info.st_size == bytes.count else { return false }
        if let owner, info.st_uid != owner.uid || info.st_gid != owner.gid { return false }
        guard let existing = readAll(fd, limit: bytes.count + 1) else { return false }
        return existing == bytes
    }

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(WriteError) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, bytes.count - offset) }
            if written < 0 {
                if errno == EINTR { continue }
                throw WriteError(path: path, operation: "write", errno: errno)
            }
            offset += written
        }
    }

    private static func randomSuffix() -> String {
        String(UInt64.random(in: 0...UInt64.max), radix: 36)
    }
}
