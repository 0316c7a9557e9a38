import Glibc

/// Writes a file so that, whatever happens (SIGKILL, power loss), readers
/// find the old content or the new one: never a mix, a truncation or nothing.
/// The path forms here walk from `/` through DirectoryHandle, so a symlink
/// at any component is refused, as it is for callers holding a handle.
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
        public init(path: String, operation: String, errno: Int32) {
            self.path = path
            self.operation = operation
            self.errno = errno
        }
        public var description: String { "\(path): \(operation) failed: \(String(cString: strerror(errno)))" }
    }

    /// `path` must be absolute.
    @discardableResult
    public static func write(_ bytes: [UInt8], to path: String, mode: mode_t, owner: Owner? = nil) throws(WriteError) -> Outcome {
        let (directory, name) = split(path)
        return try DirectoryHandle.open(directory).write(bytes, to: name, mode: mode, owner: owner)
    }

    /// Creates `path` as a directory with this mode and owner, or brings an
    /// existing one to them, through its descriptor. Its parent must exist;
    /// a symlink at any component is refused.
    public static func ensureDirectory(_ path: String, mode: mode_t, owner: Owner? = nil) throws(WriteError) {
        let (parent, name) = split(path)
        _ = try DirectoryHandle.open(parent).directory(name, mode: mode, owner: owner)
    }

    public static func split(_ path: String) -> (directory: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        let directory = String(path[..<slash])
        return (directory.isEmpty ? "/" : directory, String(path[path.index(after: slash)...]))
    }
}
