import Glibc
import SystemPackage

/// O_PATH (Linux's value on every architecture glibc supports); Glibc's
/// Swift module hides it, as it is declared under _GNU_SOURCE only.
private let openPathOnly: Int32 = 0o10000000

/// A directory held open, reached from `/` one component at a time with
/// O_NOFOLLOW: every create, write, chown, read and unlink berth does as
/// root goes through one of these, relative to the descriptor, never by a
/// path name again. The workspace user owns their home and can swap any
/// directory in it for a symlink between two of root's steps; a name looked
/// up twice could lead into /etc the second time, a held descriptor cannot.
public final class DirectoryHandle {
    /// The path it was reached by, for messages only: the descriptor, not
    /// this name, is what every operation uses.
    public let path: String
    private let fd: Int32

    private init(path: String, fd: Int32) {
        self.path = path
        self.fd = fd
    }

    deinit { close(fd) }

    /// The held descriptor, for the *at() calls this type has no method for
    /// (symlinkat, readlinkat, faccessat) and for a child's starting
    /// directory (`SpawnRequest.workingDirectoryFD`); open while this
    /// handle lives.
    public var descriptor: Int32 { fd }

    public typealias Owner = AtomicFile.Owner
    public typealias FileError = AtomicFile.WriteError

    /// `absolutePath`, opened from `/` component by component; a symlink at
    /// any component is refused (ELOOP or ENOTDIR, named in the error).
    public static func open(_ absolutePath: String) throws(FileError) -> DirectoryHandle {
        guard absolutePath.hasPrefix("/") else {
            throw FileError(path: absolutePath, operation: "open directory (not an absolute path)", errno: EINVAL)
        }
        var current = Glibc.open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard current >= 0 else { throw FileError(path: "/", operation: "open directory", errno: errno) }
        var reached = ""
        let components = absolutePath.split(separator: "/").map(String.init)
        for (index, component) in components.enumerated() {
            reached += "/" + component
            guard component != ".." else {
                close(current)
                throw FileError(path: absolutePath, operation: "open directory ('..' in the path)", errno: EINVAL)
            }
            // Intermediate components only need to be searched; the last one
            // is opened for real so it can be read, fchown'ed and fsync'ed.
            let access = index == components.count - 1 ? O_RDONLY : openPathOnly
            let next = openat(current, component, access | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            let failure = errno
            close(current)
            guard next >= 0 else { throw FileError(path: reached, operation: "open directory without following a symlink", errno: failure) }
            current = next
        }
        return DirectoryHandle(path: components.isEmpty ? "/" : absolutePath, fd: current)
    }

    private func child(_ name: String) -> String {
        path == "/" ? "/" + name : path + "/" + name
    }

    private static func checkName(_ name: String, in handle: DirectoryHandle) throws(FileError) {
        guard !name.isEmpty, name != ".", name != "..", !name.contains("/") else {
            throw FileError(path: handle.child(name), operation: "use '\(name)' as one file name", errno: EINVAL)
        }
    }

    /// The directory `relativePath` below this one, each missing component
    /// made (mode `intermediateMode`, `owner`), never following a symlink.
    /// The last component is brought to `mode` and `owner` through its own
    /// descriptor, so a swap after mkdirat changes nothing outside.
    public func directory(_ relativePath: String, mode: mode_t, intermediateMode: mode_t = 0o755, owner: Owner? = nil) throws(FileError) -> DirectoryHandle {
        let components = relativePath.split(separator: "/").map(String.init)
        var current = self
        for (index, component) in components.enumerated() {
            try Self.checkName(component, in: current)
            let isLast = index == components.count - 1
            let created = mkdirat(current.fd, component, isLast ? mode : intermediateMode) == 0
            if !created && errno != EEXIST {
                throw FileError(path: current.child(component), operation: "mkdir", errno: errno)
            }
            let next = openat(current.fd, component, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard next >= 0 else {
                throw FileError(path: current.child(component), operation: "open directory without following a symlink", errno: errno)
            }
            let handle = DirectoryHandle(path: current.child(component), fd: next)
            if let owner, created || isLast, fchown(next, owner.uid, owner.gid) != 0 {
                throw FileError(path: handle.path, operation: "chown", errno: errno)
            }
            if created || isLast, fchmod(next, isLast ? mode : intermediateMode) != 0 {
                throw FileError(path: handle.path, operation: "chmod", errno: errno)
            }
            current = handle
        }
        return current
    }

    /// An existing directory below this one, nothing created or changed.
    public func existingDirectory(_ relativePath: String) throws(FileError) -> DirectoryHandle {
        var current = self
        for component in relativePath.split(separator: "/").map(String.init) {
            try Self.checkName(component, in: current)
            let next = openat(current.fd, component, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard next >= 0 else {
                throw FileError(path: current.child(component), operation: "open directory without following a symlink", errno: errno)
            }
            current = DirectoryHandle(path: current.child(component), fd: next)
        }
        return current
    }

    /// Replaces `name` atomically: a temporary file made with O_EXCL in this
    /// directory gets the bytes, owner and mode, is fsync'ed and renamed over
    /// `name` within the same descriptor; then the directory is fsync'ed so
    /// the rename is durable. A symlink at `name` is replaced, not followed.
    @discardableResult
    public func write(_ bytes: [UInt8], to name: String, mode: mode_t, owner: Owner? = nil) throws(FileError) -> AtomicFile.Outcome {
        try Self.checkName(name, in: self)
        let target = child(name)
        if isAlreadyInPlace(bytes, name: name, mode: mode, owner: owner) { return .unchanged }
        removeLeftoverTemporaries(of: name)
        let temporary = ".\(name).berth-\(String(UInt64.random(in: 0...UInt64.max), radix: 36))"
        let file = openat(fd, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard file >= 0 else { throw FileError(path: target, operation: "create temporary file", errno: errno) }
        var committed = false
        defer { if !committed { unlinkat(fd, temporary, 0) } }
        let filled = Result<Void, FileError> { () throws(FileError) in
            try Self.writeAll(file, bytes, path: target)
            if let owner, fchown(file, owner.uid, owner.gid) != 0 { throw FileError(path: target, operation: "chown", errno: errno) }
            guard fchmod(file, mode) == 0 else { throw FileError(path: target, operation: "chmod", errno: errno) }
            guard fsync(file) == 0 else { throw FileError(path: target, operation: "fsync", errno: errno) }
        }
        close(file)
        try filled.get()
        guard renameat(fd, temporary, fd, name) == 0 else { throw FileError(path: target, operation: "rename", errno: errno) }
        committed = true
        _ = fsync(fd)
        return .written
    }

    /// The bytes of `name` if it is a plain file (not a symlink, FIFO or
    /// device), with one link, owned by one of `owners` (any owner when nil),
    /// of at most `limit` bytes; otherwise nil, as if absent. O_NONBLOCK so a
    /// FIFO planted in its place cannot hang root on open.
    public func read(_ name: String, owners: [uid_t]? = nil, limit: Int = 16 << 20) -> [UInt8]? {
        guard (try? Self.checkName(name, in: self)) != nil else { return nil }
        let file = openat(fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard file >= 0 else { return nil }
        defer { close(file) }
        var info = stat()
        guard fstat(file, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, info.st_size <= limit else { return nil }
        if let owners {
            // A hard link to a file the user may not read (/etc/shadow on the
            // same file system) has a second link; it is never copied.
            guard info.st_nlink == 1, owners.contains(info.st_uid) else { return nil }
        }
        return readAll(file, limit: limit)
    }

    /// `read` as UTF-8 text.
    public func readText(_ name: String, owners: [uid_t]? = nil, limit: Int = 16 << 20) -> String? {
        read(name, owners: owners, limit: limit).map { String(decoding: $0, as: UTF8.self) }
    }

    /// True when `name` exists here (a symlink counts, and is not followed).
    public func contains(_ name: String) -> Bool {
        var info = stat()
        return fstatat(fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0
    }

    /// Removes the file (or symlink) `name`; absent already is fine.
    public func remove(_ name: String) throws(FileError) {
        try Self.checkName(name, in: self)
        guard unlinkat(fd, name, 0) == 0 || errno == ENOENT else {
            throw FileError(path: child(name), operation: "unlink", errno: errno)
        }
    }

    /// Renames `from` to `to`, both in this directory.
    public func rename(_ from: String, to: String) throws(FileError) {
        try Self.checkName(from, in: self)
        try Self.checkName(to, in: self)
        guard renameat(fd, from, fd, to) == 0 else { throw FileError(path: child(to), operation: "rename", errno: errno) }
    }

    /// A write killed half-way leaves its temporary file; the next write of
    /// the same file clears it (berth is the only writer of its files).
    private func removeLeftoverTemporaries(of name: String) {
        let copy = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard copy >= 0, let dir = fdopendir(copy) else { return }
        defer { closedir(dir) }
        let prefix = ".\(name).berth-"
        while let entry = readdir(dir) {
            let entryName = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if entryName.hasPrefix(prefix) { unlinkat(fd, entryName, 0) }
        }
    }

    private func isAlreadyInPlace(_ bytes: [UInt8], name: String, mode: mode_t, owner: Owner?) -> Bool {
        let file = openat(fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard file >= 0 else { return false }
        defer { close(file) }
        var info = stat()
        guard fstat(file, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, info.st_nlink == 1,
              info.st_mode & 0o7777 == mode, info.st_size == bytes.count else { return false }
        if let owner, info.st_uid != owner.uid || info.st_gid != owner.gid { return false }
        guard let existing = readAll(file, limit: bytes.count + 1) else { return false }
        return existing == bytes
    }

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(FileError) {
        do {
            _ = try FileDescriptor(rawValue: fd).writeAll(bytes)
        } catch {
            throw FileError(path: path, operation: "write", errno: (error as? Errno)?.rawValue ?? EIO)
        }
    }
}
