import BerthCore
import Glibc
import SystemPackage

/// `workspace-supervisor list` and `restore`: one-shot commands, often run
/// by root (`docker exec`), on a backup mount the workspace user must not
/// be able to steer. So the mount must belong to a trusted uid (as the
/// daemon checks it), restic reads the repositories (the mount's first,
/// then the remote one) with their password on its standard input, and a
/// restore goes through a tar stream (of what `restic restore` wrote into
/// a private tree on the mount) kept in an unnamed file: its listing is
/// checked before anything is written, and tar unpacks it as the workspace
/// user, never root, keeping no owner and no setuid/setgid bit. They wait for their helpers; the daemon never does.
public struct RepositoryCommands {
    let store: BackupStore
    /// The mount's repository first, then the remote one.
    public let repositories: [ResticRepository]
    /// Who tar runs as when we are root; nil: ourselves.
    public let extractAs: UserAccount?

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    /// As root, restores unpack as `BERTH_USER` (default dev8), refused if
    /// it is root itself; the supervisor's user (`SUPERVISOR_USER`, default
    /// berth-supervisor) may own the mount, never the workspace user.
    /// `restoring`: the workspace user is looked up (listing needs none).
    public static func plan(_ backup: SupervisorSettings.Backup, environment: [String: String], restoring: Bool,
                            passwdFile: String = "/etc/passwd", groupFile: String = "/etc/group") throws(Failure) -> RepositoryCommands {
        var extractAs: UserAccount?
        if geteuid() == 0 && restoring {
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
        let store: BackupStore
        let password: Secret
        do throws(BackupStoreError) {
            store = try BackupStore(opening: backup.mountPath, trustedOwners: trusted, create: false)
            if let problem = store.repositoryProblem() { throw BackupStoreError(problem) }
            if let given = backup.password { password = given } else { password = try store.password(create: false) }
        } catch {
            throw Failure(error.description)
        }
        var repositories = [ResticRepository(kind: .local, location: store.repositoryPath, password: password)]
        if let remote = backup.remote {
            // No cache: one written as root would be unwritable to the daemon.
            repositories.append(ResticRepository(kind: remote.kind, location: remote.location, credentials: remote.credentials, password: password))
        }
        return RepositoryCommands(store: store, repositories: repositories, extractAs: extractAs)
    }

    /// The daemon's snapshots in each repository, oldest first; a repository
    /// that cannot be read gives its error instead.
    public func list() -> [(repository: ResticRepository, snapshots: Result<[ResticSnapshot], Failure>)] {
        repositories.map { repository in
            // A mount no backup has reached yet (a new container's) has none.
            if repository.kind == .local && !store.hasRepository { return (repository, .success([])) }
            let run = Self.wait(repository, ["snapshots", "--json", "--tag", ResticSnapshot.tag])
            guard run.status == .exited(0), let list = ResticSnapshot.parseList(run.output) else {
                return (repository, .failure(Failure("\(repository.kind.rawValue) repository: \(Self.resticFailure(run))")))
            }
            return (repository, .success(list))
        }
    }

    /// Restores `snapshot` (an id, its short form, or `latest`) from the
    /// first repository that has it into `target`; the snapshot and the
    /// repository's kind.
    public func restore(_ snapshot: String, into target: String) throws(Failure) -> (ResticSnapshot, ResticRepository.Kind) {
        guard snapshot == "latest" || (4...64).contains(snapshot.count) && snapshot.allSatisfy(\.isHexDigit) else {
            throw Failure("'\(snapshot)': not a snapshot id (hex, as `workspace-supervisor list` shows it) or 'latest'")
        }
        var errors: [String] = []
        for (repository, listed) in list() {
            let snapshots: [ResticSnapshot]
            switch listed {
            case .failure(let failure): errors.append(failure.description); continue
            case .success(let list): snapshots = list
            }
            let found = snapshot == "latest" ? snapshots.last : snapshots.last { $0.id.hasPrefix(snapshot.lowercased()) }
            guard let found else { continue }
            try restore(found, from: repository, into: target)
            return (found, repository.kind)
        }
        throw Failure("no snapshot '\(snapshot)' in \(repositories.map { $0.kind.rawValue }.joined(separator: " or ")); nothing restored"
                      + (errors.isEmpty ? "" : " (\(errors.joined(separator: "; ")))"))
    }

    private func restore(_ snapshot: ResticSnapshot, from repository: ResticRepository, into target: String) throws(Failure) {
        let scratch = try unnamedFile("")
        defer { close(scratch) }
        if try hasOnlyFilesDirectoriesAndLinks(snapshot, in: repository) {
            try unpackSnapshot(snapshot, from: repository, into: scratch)
        } else {
            // restic restore would make the FIFOs and fail on the devices;
            // dump gives each as an empty file, as restore has always done.
            let dump = Self.wait(repository, ["dump", "--archive", "tar", snapshot.id, "/"], output: scratch)
            guard dump.status == .exited(0) else {
                throw Failure("\(repository.kind.rawValue) repository: restic dump \(snapshot.shortID): \(Self.resticFailure(dump)); nothing restored")
            }
        }
        // The workspace user reads it through a descriptor of its own that
        // cannot write.
        let archive = open("/proc/self/fd/\(scratch)", O_RDONLY | O_CLOEXEC)
        guard archive >= 0 else { throw Failure("cannot reopen the snapshot's stream: \(String(cString: strerror(errno)))") }
        defer { close(archive) }

        // --absolute-names: names as stored, not with tar's own repairs, so
        // the check sees what a careless extraction would write. Even
        // reading runs as the workspace user: a parser bug must not be root's.
        let listing = Self.wait(["tar", "--list", "--verbose", "--numeric-owner", "--absolute-names", "--quoting-style=c", "--file", "-"],
                                input: archive, as: extractAs)
        guard listing.status == .exited(0) else {
            throw Failure("snapshot \(snapshot.shortID): tar cannot list it: \(String(decoding: listing.errors, as: UTF8.self).split(separator: "\n").first ?? "")")
        }
        let members: [ArchiveMember]
        do {
            members = try ArchiveMember.parseListing(String(decoding: listing.output, as: UTF8.self))
        } catch {
            throw Failure("snapshot \(snapshot.shortID): \(error); nothing restored")
        }
        if let refusal = ArchiveMember.refusal(members) { throw Failure("snapshot \(snapshot.shortID): \(refusal); nothing restored") }

        let directory = try openTarget(target)
        defer { close(directory) }
        // Not --preserve-permissions: as a non-root user GNU tar then keeps
        // the archive's modes minus setuid/setgid (umask 0 below keeps the
        // rest); --no-same-owner: the workspace user owns what it writes.
        let extract = Self.wait(["tar", "--extract", "--file", "-", "--no-same-owner", "--no-same-permissions"],
                                input: archive, directory: directory, as: extractAs, umask: 0)
        guard extract.status == .exited(0) else {
            throw Failure("tar: \(String(decoding: extract.errors, as: UTF8.self))")
        }
    }

    /// Whether the snapshot holds nothing but files, directories and
    /// symbolic links (`restic ls --json` reads its trees only). JSON
    /// escapes every quote in a name, so a name cannot fake a node's type.
    func hasOnlyFilesDirectoriesAndLinks(_ snapshot: ResticSnapshot, in repository: ResticRepository) throws(Failure) -> Bool {
        let listed = Self.wait(repository, ["ls", "--json", snapshot.id])
        guard listed.status == .exited(0) else {
            throw Failure("\(repository.kind.rawValue) repository: restic ls \(snapshot.shortID): \(Self.resticFailure(listed)); nothing restored")
        }
        let plain = [#""type":"file""#, #""type":"dir""#, #""type":"symlink""#]
        return String(decoding: listed.output, as: UTF8.self).split(separator: "\n").allSatisfy { line in
            !line.contains(#""struct_type":"node""#) || plain.contains { line.contains($0) }
        }
    }

    /// The snapshot as a tar stream in `scratch`. `restic restore` fetches
    /// whole packs, several at once (`restic dump` asks the repository for
    /// every blob in turn: from moto's S3, 64 MiB in 7,042 files, the whole
    /// restore took 16.1 s where dump alone took 78.4 s), into a private
    /// tree on the mount (0700) which `tar --create` then reads, both as
    /// the mount's owner: as root, restic would give the tree the
    /// snapshot's owners and setuid bits (only when the mount is root's
    /// does that happen, inside a directory nobody else can enter). The
    /// tree is removed whatever happens.
    func unpackSnapshot(_ snapshot: ResticSnapshot, from repository: ResticRepository, into scratch: Int32) throws(Failure) {
        var mount = stat()
        guard fstat(store.fd, &mount) == 0 else { throw Failure("\(store.root): \(String(cString: strerror(errno)))") }
        let owner: UserAccount? = geteuid() == 0 && mount.st_uid != 0
            ? UserAccount(name: "uid \(mount.st_uid)", uid: mount.st_uid, gid: mount.st_gid, home: "/nonexistent", shell: "/bin/false", groups: [mount.st_gid])
            : nil
        let treeName = ".restore-\(getpid()).tree"
        let tree = store.root + "/" + treeName
        let removal = { _ = Self.wait(["rm", "-rf", "--one-file-system", "--", tree], as: owner) }
        removal()
        guard mkdirat(store.fd, treeName, 0o700) == 0 else { throw Failure("\(tree): cannot create: \(String(cString: strerror(errno)))") }
        defer { removal() }
        if let owner, fchownat(store.fd, treeName, owner.uid, owner.gid, AT_SYMLINK_NOFOLLOW) != 0 {
            throw Failure("\(tree): cannot hand it to uid \(owner.uid): \(String(cString: strerror(errno)))")
        }
        let restored = Self.wait(repository, ["restore", snapshot.id, "--target", tree], as: owner)
        guard restored.status == .exited(0) else {
            throw Failure("\(repository.kind.rawValue) repository: restic restore \(snapshot.shortID): \(Self.resticFailure(restored)); nothing restored")
        }
        // The tree's entries by name, not ".": the tree's own mode (0700)
        // must not become the target's. Names as the bytes they are, one
        // per NUL, in an unnamed file on the mount (tar's stdin).
        guard let names = directoryEntryNames(tree) else { throw Failure("\(tree): cannot read: \(String(cString: strerror(errno))); nothing restored") }
        let list = try unnamedFile(".names")
        defer { close(list) }
        do {
            _ = try FileDescriptor(rawValue: list).writeAll(names.flatMap { $0 + [0] })
        } catch {
            throw Failure("\(store.root): cannot write the list of names: \(error)")
        }
        // POSIX format: times to the nanosecond, as restic restored them.
        let packed = Self.wait(["tar", "--create", "--file", "-", "--format=posix", "--numeric-owner", "--directory", tree,
                                "--null", "--verbatim-files-from", "--files-from=-"], input: list, output: scratch, as: owner)
        guard packed.status == .exited(0) else {
            throw Failure("snapshot \(snapshot.shortID): tar cannot read what restic restored: \(String(decoding: packed.errors, as: UTF8.self).split(separator: "\n").first ?? ""); nothing restored")
        }
    }

    /// A file of the mount that has no name (made as `.restore-PID` +
    /// `suffix`, then unlinked): nobody else can open it, and nothing is
    /// left of it when we end.
    func unnamedFile(_ suffix: String) throws(Failure) -> Int32 {
        let name = ".restore-\(getpid())" + suffix
        unlinkat(store.fd, name, 0)
        let fd = openat(store.fd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Failure("\(store.root)/\(name): cannot create: \(String(cString: strerror(errno)))") }
        unlinkat(store.fd, name, 0)
        return fd
    }

    /// The target, made by the workspace user if missing (its parents are
    /// theirs), then opened without following a symlink at its top.
    func openTarget(_ target: String) throws(Failure) -> Int32 {
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

    /// restic on `repository` to its end, as we are; `output` given: its
    /// standard output goes there. `--no-lock`: listing and dumping only
    /// read, so a command run as root writes nothing into the repository
    /// (no root-owned lock or `locks/` the daemon could not write later).
    static func wait(_ repository: ResticRepository, _ arguments: [String], output: Int32 = -1, as user: UserAccount? = nil) -> Finished {
        let command = repository.command(["--no-lock"] + arguments, timeout: .seconds(0))
        return wait(command.request.arguments, environment: command.request.environment, inputBytes: command.input ?? [], output: output, as: user)
    }

    static func resticFailure(_ run: Finished) -> String {
        ResticRepository.failure(errors: run.errors, status: run.status)
    }

    struct Finished {
        var status: ChildStatus?
        var output: [UInt8] = []
        var errors: [UInt8] = []
    }

    /// Runs a helper to its end: `input` rewound and given as stdin (the
    /// same open file every time), or `inputBytes` through a pipe; started in
    /// `directory`, as `user`; its stdout kept, or written to `output`.
    static func wait(_ arguments: [String], environment: [String]? = nil, input: Int32 = -1, inputBytes: [UInt8]? = nil, output: Int32 = -1,
                     directory: Int32 = -1, as user: UserAccount? = nil, umask mask: mode_t = 0o077) -> Finished {
        var finished = Finished()
        var given = input
        if let inputBytes {
            // A password is far below a pipe's 64 KiB: written whole before
            // the helper starts, and the write end closed.
            var ends: [Int32] = [0, 0]
            guard inputBytes.count < 65536, pipe(&ends) == 0 else { return finished }
            for fd in ends { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            _ = inputBytes.withUnsafeBytes { write(ends[1], $0.baseAddress, $0.count) }
            close(ends[1])
            // restic opens /dev/stdin, which checks the pipe's owner.
            if let user { _ = fchown(ends[0], user.uid, user.gid) }
            given = ends[0]
        }
        defer { if inputBytes != nil { close(given) } }
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
        request.environment = (environment ?? HelperCommand.toolEnvironment()) + ["LC_ALL=C"]
        if input >= 0 { lseek(input, 0, SEEK_SET) }
        let devNull = given >= 0 ? -1 : open("/dev/null", O_RDONLY | O_CLOEXEC)
        request.standardInput = given >= 0 ? given : devNull
        request.standardOutput = output >= 0 ? output : out[1]
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

