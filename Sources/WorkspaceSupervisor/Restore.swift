import BerthCore
import Glibc

/// `workspace-supervisor restore`: often run by root (`docker exec`), on
/// snapshots the workspace user may have crafted. So: the store and the
/// snapshot must be owned by a trusted uid, the archive is opened once and
/// every step reads that descriptor (checksum, listing, extraction), the
/// listing is checked before anything is written, and tar runs as the
/// workspace user, never root, keeping no owner and no setuid/setgid bit.
/// A one-shot command, so it waits for its helpers; the daemon never does.
public struct Restore {
    public var store: String
    public var snapshot: String
    public var target: String
    /// Uids that may own the store: root, ourselves, the supervisor's user.
    public var trustedOwners: [uid_t]
    /// Who tar runs as when we are root; nil: ourselves.
    public var extractAs: UserAccount?

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    /// Who restores: as root, `BERTH_USER` (default dev8), refused if it is
    /// root itself; the supervisor's user (`SUPERVISOR_USER`, default
    /// berth-supervisor) may own the store, but never the workspace user.
    public static func plan(store: String, snapshot: String, target: String, environment: [String: String],
                            passwdFile: String = "/etc/passwd", groupFile: String = "/etc/group") throws(Failure) -> Restore {
        var extractAs: UserAccount?
        if geteuid() == 0 {
            let name = environment["BERTH_USER"].flatMap { $0.isEmpty ? nil : $0 } ?? "dev8"
            let user: UserAccount
            do {
                user = try UserAccount.lookup(name, passwdFile: passwdFile, groupFile: groupFile)
            } catch {
                throw Failure("\(error.message): restore runs tar as the workspace user, never as root")
            }
            guard user.uid != 0 else { throw Failure("BERTH_USER=\(name) is root: restore runs tar as the workspace user, never as root") }
            extractAs = user
        }
        let trusted = BackupStore.ownersTrustedByCommands(environment: environment, excluding: extractAs?.uid,
                                                          passwdFile: passwdFile, groupFile: groupFile)
        return Restore(store: store, snapshot: snapshot, target: target, trustedOwners: trusted, extractAs: extractAs)
    }

    /// Returns the manifest of what was restored.
    public func run() throws(Failure) -> SnapshotManifest {
        guard !snapshot.isEmpty, !snapshot.hasPrefix("."), !snapshot.contains("/") else {
            throw Failure("'\(snapshot)': not a snapshot id")
        }
        let opened: BackupStore
        do {
            opened = try BackupStore(opening: store, trustedOwners: trustedOwners, create: false)
        } catch {
            throw Failure(error.description)
        }
        let directory = openat(opened.fd, snapshot, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard directory >= 0 else { throw Failure("\(store)/\(snapshot): cannot open: \(String(cString: strerror(errno)))") }
        defer { close(directory) }
        if let problem = BackupStore.problem(directory, trustedOwners) {
            throw Failure("\(store)/\(snapshot): \(problem); \(BackupStore.expectation(trustedOwners))")
        }
        guard let manifest = opened.readManifest(snapshot) else {
            throw Failure("\(store)/\(snapshot): not a complete snapshot (no readable manifest.json)")
        }
        let archive = openat(directory, SnapshotManifest.archiveName, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard archive >= 0 else {
            throw Failure("\(store)/\(snapshot)/\(SnapshotManifest.archiveName): cannot open: \(String(cString: strerror(errno)))")
        }
        defer { close(archive) }
        var info = stat()
        guard fstat(archive, &info) == 0, info.st_mode & S_IFMT == S_IFREG, trustedOwners.contains(info.st_uid), info.st_mode & 0o022 == 0 else {
            throw Failure("\(store)/\(snapshot)/\(SnapshotManifest.archiveName): not a regular file of the supervisor's user, or writable by others")
        }
        let archivePath = "\(store)/\(snapshot)/\(SnapshotManifest.archiveName)"

        // Even reading runs as the workspace user: gzip and tar parse bytes
        // that came from the workspace, and a parser bug must not be root's.
        let sum = Self.wait(["sha256sum"], input: archive, as: extractAs)
        let hex = String(decoding: sum.output, as: UTF8.self).split(separator: " ").first.map(String.init)
        guard sum.status == .exited(0), hex == manifest.sha256 else {
            throw Failure("\(archivePath): checksum does not match the manifest (\(hex ?? "unreadable")); nothing restored")
        }

        // --absolute-names: names as stored, not with tar's own repairs, so
        // the check sees what a careless extraction would write.
        let listing = Self.wait(["tar", "--list", "--verbose", "--numeric-owner", "--absolute-names", "--quoting-style=c", "--gzip", "--file", "-"],
                                input: archive, as: extractAs)
        guard listing.status == .exited(0) else {
            throw Failure("\(archivePath): tar cannot list it: \(String(decoding: listing.errors, as: UTF8.self).split(separator: "\n").first ?? "")")
        }
        let members: [ArchiveMember]
        do {
            members = try ArchiveMember.parseListing(String(decoding: listing.output, as: UTF8.self))
        } catch {
            throw Failure("\(archivePath): \(error); nothing restored")
        }
        if let refusal = ArchiveMember.refusal(members) { throw Failure("\(archivePath): \(refusal); nothing restored") }

        let directoryFD = try openTarget()
        defer { close(directoryFD) }
        // Not --preserve-permissions: as a non-root user GNU tar then keeps
        // the archive's modes minus setuid/setgid (umask 0 below keeps the
        // rest); --no-same-owner: the workspace user owns what it writes.
        let extract = Self.wait(["tar", "--extract", "--gzip", "--file", "-", "--no-same-owner", "--no-same-permissions"],
                                input: archive, directory: directoryFD, as: extractAs, umask: 0)
        guard extract.status == .exited(0) else {
            throw Failure("tar: \(String(decoding: extract.errors, as: UTF8.self))")
        }
        return manifest
    }

    /// The target, made by the workspace user if missing (its parents are
    /// theirs), then opened without following a symlink at its top.
    func openTarget() throws(Failure) -> Int32 {
        var fd = open(target, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if fd < 0 && errno == ENOENT {
            let made = Self.wait(["mkdir", "-p", "--", target], as: extractAs, umask: 0o022)
            guard made.status == .exited(0) else {
                throw Failure("\(target): cannot create: \(String(decoding: made.errors, as: UTF8.self).split(separator: "\n").first ?? "")")
            }
            fd = open(target, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        }
        guard fd >= 0 else {
            throw Failure("\(target): \(openFailure(target)); nothing restored")
        }
        return fd
    }

    struct Finished {
        var status: ChildStatus?
        var output: [UInt8] = []
        var errors: [UInt8] = []
    }

    /// Runs a helper to its end: `input` rewound and given as stdin (the
    /// same open file every time), started in `directory`, as `user`.
    static func wait(_ arguments: [String], input: Int32 = -1, directory: Int32 = -1, as user: UserAccount? = nil, umask mask: mode_t = 0o077) -> Finished {
        var finished = Finished()
        var out: [Int32] = [0, 0]
        var err: [Int32] = [0, 0]
        // One thread, so no other spawn can inherit these before FD_CLOEXEC.
        guard pipe(&out) == 0 else { return finished }
        guard pipe(&err) == 0 else {
            close(out[0]); close(out[1])
            return finished
        }
        for fd in out + err { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var request = SpawnRequest(arguments: arguments)
        request.environment = HelperCommand.toolEnvironment() + ["LC_ALL=C"]
        if input >= 0 { lseek(input, 0, SEEK_SET) }
        let devNull = input >= 0 ? -1 : open("/dev/null", O_RDONLY | O_CLOEXEC)
        request.standardInput = input >= 0 ? input : devNull
        request.standardOutput = out[1]
        request.standardError = err[1]
        request.workingDirectoryFD = directory
        if directory < 0 { request.workingDirectory = "/" }
        if let user {
            request.identity = .init(uid: user.uid, gid: user.gid, groups: user.groups)
            request.noNewPrivileges = true
        }
        // The child inherits the umask; ours is restored right after.
        let previous = umask(mask)
        defer { close(out[0]); close(err[0]) }
        let pid: pid_t
        do {
            pid = try Spawner.spawn(request)
            umask(previous)
            close(out[1])
            close(err[1])
            if devNull >= 0 { close(devNull) }
        } catch {
            umask(previous)
            close(out[1])
            close(err[1])
            if devNull >= 0 { close(devNull) }
            finished.errors = Array("\(arguments[0]): \(error)".utf8)
            if let failed = error.pid { var status: Int32 = 0; _ = try? retryingOnInterrupt { waitpid(failed, &status, 0) } }
            return finished
        }
        var open = [out[0], err[0]]
        var buffer = [UInt8](repeating: 0, count: 65536)
        while !open.isEmpty {
            var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            guard (try? retryingOnInterrupt { poll(&fds, nfds_t(fds.count), -1) }) != nil else { break }
            for entry in fds where entry.revents != 0 {
                if let count = try? retryingOnInterrupt({ read(entry.fd, &buffer, buffer.count) }), count > 0 {
                    if entry.fd == out[0] { finished.output += buffer[0..<count] } else if finished.errors.count < 1 << 16 { finished.errors += buffer[0..<count] }
                } else {
                    open.removeAll { $0 == entry.fd }
                }
            }
        }
        var status: Int32 = 0
        _ = try? retryingOnInterrupt { waitpid(pid, &status, 0) }
        finished.status = ChildStatus(waitStatus: status)
        return finished
    }
}

/// One line of `tar --list --verbose --quoting-style=c`: its type (the mode
/// string's first letter), mode, path and, for links, the target.
public struct ArchiveMember: Equatable, Sendable {
    public var type: Character
    public var mode: String
    public var path: String
    public var linkTarget: String?

    public struct ParseError: Error, CustomStringConvertible {
        public let description: String
    }

    public static func parseListing(_ text: String) throws(ParseError) -> [ArchiveMember] {
        var members: [ArchiveMember] = []
        for line in text.split(separator: "\n") {
            let bytes = Array(line.utf8)
            guard let quote = bytes.firstIndex(of: UInt8(ascii: "\"")), let type = line.first else {
                throw ParseError(description: "unexpected listing line '\(line)'")
            }
            var cursor = quote
            let path = try unquote(bytes, &cursor)
            var target: String?
            let rest = String(decoding: bytes[cursor...], as: UTF8.self)
            if rest.hasPrefix(" -> \"") || rest.hasPrefix(" link to \"") {
                cursor = bytes[cursor...].firstIndex(of: UInt8(ascii: "\""))!
                target = try unquote(bytes, &cursor)
            } else if !rest.isEmpty {
                throw ParseError(description: "unexpected listing line '\(line)'")
            }
            members.append(ArchiveMember(type: type, mode: String(line.prefix { $0 != " " }), path: path, linkTarget: target))
        }
        return members
    }

    /// A C-quoted string starting at `cursor` (the opening quote); leaves
    /// `cursor` after the closing one.
    static func unquote(_ bytes: [UInt8], _ cursor: inout Int) throws(ParseError) -> String {
        var result: [UInt8] = []
        var index = cursor + 1
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                cursor = index + 1
                return String(decoding: result, as: UTF8.self)
            }
            if byte == UInt8(ascii: "\\"), index + 1 < bytes.count {
                let next = bytes[index + 1]
                if (UInt8(ascii: "0")...UInt8(ascii: "7")).contains(next), index + 3 < bytes.count {
                    let digits = bytes[(index + 1)...(index + 3)].map { $0 &- UInt8(ascii: "0") }
                    result.append(digits[0] &* 64 &+ digits[1] &* 8 &+ digits[2])
                    index += 4
                    continue
                }
                let escapes: [UInt8: UInt8] = [UInt8(ascii: "n"): 10, UInt8(ascii: "t"): 9, UInt8(ascii: "r"): 13, UInt8(ascii: "a"): 7,
                                               UInt8(ascii: "b"): 8, UInt8(ascii: "f"): 12, UInt8(ascii: "v"): 11]
                result.append(escapes[next] ?? next)
                index += 2
                continue
            }
            result.append(byte)
            index += 1
        }
        throw ParseError(description: "unterminated name in the listing")
    }

    /// The path's components, "." and empty ones dropped; nil when absolute
    /// or when one is "..".
    static func components(_ path: String) -> [Substring]? {
        guard !path.hasPrefix("/") else { return nil }
        let parts = path.split(separator: "/").filter { $0 != "." }
        return parts.contains("..") ? nil : parts
    }

    /// Why the archive must not be unpacked, or nil: absolute names, "..",
    /// a member under a symlink member (written through the link), a hard
    /// link leaving the tree or going through a symlink, device nodes,
    /// FIFOs and anything but files, directories and links.
    public static func refusal(_ members: [ArchiveMember]) -> String? {
        var symlinks = Set<[Substring]>()
        for member in members where member.type == "l" {
            if let parts = components(member.path) { symlinks.insert(parts) }
        }
        func throughSymlink(_ parts: [Substring]) -> Bool {
            parts.indices.dropLast().contains { symlinks.contains(Array(parts[...$0])) }
        }
        for member in members {
            guard "-dlh".contains(member.type) else {
                return "member '\(member.path)' is of type '\(member.type)' (a device, FIFO or other special file)"
            }
            guard let parts = components(member.path) else {
                return "member '\(member.path)' has an absolute path or a '..' component"
            }
            guard !throughSymlink(parts) else { return "member '\(member.path)' goes through a symbolic link member" }
            if member.type == "h" {
                guard let target = member.linkTarget, let targetParts = components(target) else {
                    return "hard link '\(member.path)' points outside the archive ('\(member.linkTarget ?? "")')"
                }
                guard !throughSymlink(targetParts) && !symlinks.contains(targetParts) else {
                    return "hard link '\(member.path)' goes through a symbolic link member"
                }
            }
        }
        return nil
    }
}
