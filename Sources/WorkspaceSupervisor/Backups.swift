import BerthCore
import Glibc

/// Why the snapshot store (or a snapshot in it) is not used.
public struct BackupStoreError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The backup mount, SUPERVISOR_BACKUP_MOUNT_PATH: restic's repository
/// (`restic`), its generated password when none is given, and restic's
/// cache for a remote repository; through one directory
/// descriptor opened without following a symlink and checked: owned by a
/// trusted uid and writable by nobody else. Whoever can write the store can
/// rewrite what restore unpacks (and read the generated password), so the
/// daemon's own accesses are relative to that descriptor; restic goes by the
/// path, below a directory only a trusted uid can change.
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

    /// restic's repository on the mount (`restic`), made by `restic init`.
    public var repositoryPath: String { root + "/restic" }
    /// restic's cache for a remote repository, beside it.
    public var cachePath: String { root + "/.restic-cache" }
    static let passwordFile = "restic-password"

    /// The repository has its config file: `restic init` made it.
    public var hasRepository: Bool {
        var info = stat()
        return fstatat(fd, "restic/config", &info, AT_SYMLINK_NOFOLLOW) == 0
    }

    /// nil when the repository's top directory (if there is one yet) is a
    /// directory of a trusted uid that nobody else may write: what restore
    /// reads must be what the daemon wrote.
    public func repositoryProblem() -> String? {
        let directory = openat(fd, "restic", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if directory < 0 {
            return errno == ENOENT ? nil : "\(repositoryPath): \(errno == ENOTDIR || errno == ELOOP ? "not a directory" : String(cString: strerror(errno)))"
        }
        defer { close(directory) }
        return Self.problem(directory, trustedOwners).map { "\(repositoryPath): \($0); \(Self.expectation(trustedOwners))" }
    }

    /// The mount-only repository's password: read from `restic-password` in
    /// the store, or made once (32 random bytes, hex) when `create` and there
    /// is none. Through the store's descriptor, never followed through a
    /// link, mode 0400. Whoever holds the volume holds the key beside the
    /// repository: SUPERVISOR_BACKUP_PASSWORD keeps it elsewhere.
    public func password(create: Bool) throws(BackupStoreError) -> Secret {
        let name = "\(root)/\(Self.passwordFile)"
        var file = openat(fd, Self.passwordFile, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        if file < 0 && errno == ENOENT && create {
            // SystemRandomNumberGenerator: getrandom(2), the kernel's CSPRNG.
            var generator = SystemRandomNumberGenerator()
            let text = Array((0..<4).map { _ in
                let word = String(generator.next() as UInt64, radix: 16)
                return String(repeating: "0", count: 16 - word.count) + word
            }.joined().utf8)
            // Written under another name and linked in whole (link never
            // replaces): a reader never sees half a password, and a password
            // another start made first is the one kept.
            let partial = ".\(Self.passwordFile)-\(getpid())"
            unlinkat(fd, partial, 0)
            let made = openat(fd, partial, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o400)
            guard made >= 0 else { throw BackupStoreError("\(name): cannot create: \(String(cString: strerror(errno)))") }
            let written = text.withUnsafeBytes { write(made, $0.baseAddress, $0.count) }
            fsync(made)
            close(made)
            guard written == text.count, linkat(fd, partial, fd, Self.passwordFile, 0) == 0 || errno == EEXIST else {
                let failure = errno
                unlinkat(fd, partial, 0)
                throw BackupStoreError("\(name): cannot write: \(String(cString: strerror(failure)))")
            }
            unlinkat(fd, partial, 0)
            fsync(fd)
            file = openat(fd, Self.passwordFile, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        }
        guard file >= 0 else {
            throw BackupStoreError("\(name): cannot read: \(String(cString: strerror(errno))); set SUPERVISOR_BACKUP_PASSWORD to the repository's password")
        }
        defer { close(file) }
        var info = stat()
        guard fstat(file, &info) == 0, info.st_mode & S_IFMT == S_IFREG, trustedOwners.contains(info.st_uid), info.st_mode & 0o077 == 0 else {
            throw BackupStoreError("\(name): not a private file of the supervisor's user (mode 0400)")
        }
        guard let bytes = readAll(file, limit: 4096), !bytes.isEmpty else { throw BackupStoreError("\(name): empty or unreadable") }
        return Secret(bytes.last == 10 ? Array(bytes.dropLast()) : bytes)
    }
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
