import BerthCore
import Glibc

/// Takes snapshots on the loop with tar, gzip and sha256sum as helper
/// processes (the loop never waits on the disk). One at a time; `abort`
/// kills the running helper and removes the partial snapshot.
public final class BackupRunner {
    public enum Outcome: Sendable, Equatable {
        case created(SnapshotManifest, removed: [String])
        case skipped(String)
        case failed(String)
    }

    public struct LastRun: Sendable {
        public var finishedAt: WallTime
        public var milliseconds: Int64
        public var reason: String
        public var outcome: Outcome
        /// Copies in object storage: "s3 ok", "azure failed: ...".
        public var remote: [String]
    }

    let loop: EventLoop
    let settings: SupervisorSettings.Backup
    let workspace: String
    /// nil while the store is refused (`storeError` says why); opened
    /// again at each backup, so fixing its owner needs no restart.
    public private(set) var store: BackupStore?
    public private(set) var storeError: String?
    var current: HelperHandle?
    let remote: RemoteCopies
    var remoteResult: [String] = []
    /// `.partial-ID` and its open descriptor while a backup builds it.
    var partial: (id: String, fd: Int32)?
    var aborted = false
    public private(set) var running = false
    public private(set) var lastRun: LastRun?
    public private(set) var created = 0
    public private(set) var failures = 0
    public private(set) var skips = 0

    public init(loop: EventLoop, settings: SupervisorSettings.Backup, workspace: String) {
        self.loop = loop
        self.settings = settings
        self.workspace = workspace
        self.remote = RemoteCopies(loop: loop, settings: settings)
        openStore()
    }

    /// The daemon trusts a store of its own uid or root's only: another
    /// owner (the workspace user) could rewrite the snapshots restore reads.
    /// An open store is checked again (an operator's chmod), never reopened
    /// by path while it passes.
    @discardableResult
    func openStore() -> BackupStore? {
        if let store, let problem = BackupStore.problem(store.fd, store.trustedOwners) {
            storeError = "SUPERVISOR_BACKUP_MOUNT_PATH=\(settings.mountPath): \(problem); \(BackupStore.expectation(store.trustedOwners))"
            self.store = nil
            return nil
        }
        if let store { return store }
        do {
            store = try BackupStore(opening: settings.mountPath, trustedOwners: [geteuid(), 0], create: true)
            storeError = nil
        } catch {
            storeError = error.description
        }
        return store
    }

    /// `force`: take it even when nothing changed (POST /backup, SIGUSR1).
    /// `activeSinceLast`: the workspace was used since the last snapshot.
    /// false when one is already running.
    @discardableResult
    public func start(reason: String, force: Bool, activeSinceLast: Bool, done: @escaping (Outcome) -> Void = { _ in }) -> Bool {
        guard !running else { return false }
        running = true
        aborted = false
        remoteResult = []
        let started = WallTime.now()
        let finish: (Outcome) -> Void = { [self] outcome in
            running = false
            current = nil
            if let partial {
                close(partial.fd)
                store?.removeFlatDirectory(".partial-" + partial.id)
            }
            partial = nil
            switch outcome {
            case .created: created += 1
            case .skipped: skips += 1
            case .failed: failures += 1
            }
            let now = WallTime.now()
            lastRun = LastRun(finishedAt: now, milliseconds: now.milliseconds - started.milliseconds, reason: reason, outcome: outcome,
                              remote: remoteResult)
            done(outcome)
        }
        guard let store = openStore() else {
            finish(.failed(storeError ?? "SUPERVISOR_BACKUP_MOUNT_PATH=\(settings.mountPath): refused"))
            return true
        }
        guard access(workspace, R_OK | X_OK) == 0 else {
            finish(.failed("WORKSPACE_DIR=\(workspace): cannot read: \(String(cString: strerror(errno)))"))
            return true
        }
        store.removeIncomplete()
        // The listing the fingerprint is made of: names, types, sizes,
        // modification times, modes and link targets.
        run(["find", ".", "-printf", "%P\\t%y\\t%s\\t%T@\\t%m\\t%l\\n"], directory: workspace, timeout: .seconds(600)) { [self] result in
            guard !aborted else { return finish(.failed("aborted")) }
            guard result.succeeded else { return finish(.failed("listing \(workspace) failed: \(Self.firstLine(result))")) }
            let print = fingerprint(result.standardOutput)
            let last = store.snapshots().last
            if !force, !activeSinceLast, let last, last.fingerprint == print {
                return finish(.skipped("idle and unchanged since \(last.id)"))
            }
            let id = store.newID(at: .now())
            let directory: Int32
            do {
                directory = try store.makePartial(id)
            } catch {
                return finish(.failed("\(error)"))
            }
            partial = (id, directory)
            archive(id: id, into: directory, fingerprint: print, finish: finish)
        }
        return true
    }

    /// Every helper starts in the partial snapshot's open directory and
    /// names the archive relative to it: no path into the store is resolved
    /// twice.
    private func archive(id: String, into directory: Int32, fingerprint print: String, finish: @escaping (Outcome) -> Void) {
        let archive = SnapshotManifest.archiveName
        var tar = ["tar", "--create", "--gzip", "--file", archive, "--numeric-owner", "--warning=no-file-changed", "--warning=no-file-removed"]
        tar += settings.excludes.map { "--exclude=" + $0 }
        tar += ["--directory", workspace, "."]
        run(tar, in: directory, timeout: .seconds(3600)) { [self] result in
            guard !aborted else { return finish(.failed("aborted")) }
            // 1: a file changed while it was read; the archive is whole.
            guard result.status == .exited(0) || result.status == .exited(1), !result.timedOut else {
                return finish(.failed("tar failed: \(Self.firstLine(result))"))
            }
            run(["sha256sum", archive], in: directory, timeout: .seconds(600)) { [self] sum in
                guard !aborted else { return finish(.failed("aborted")) }
                guard sum.succeeded, let hex = String(decoding: sum.standardOutput, as: UTF8.self).split(separator: " ").first, hex.count == 64 else {
                    return finish(.failed("sha256sum failed: \(Self.firstLine(sum))"))
                }
                // Read back before it counts: a truncated archive fails here.
                run(["tar", "--list", "--gzip", "--file", archive], in: directory, timeout: .seconds(3600)) { [self] list in
                    guard !aborted else { return finish(.failed("aborted")) }
                    guard list.succeeded else { return finish(.failed("the archive does not read back: \(Self.firstLine(list))")) }
                    var info = stat()
                    fstatat(directory, archive, &info, AT_SYMLINK_NOFOLLOW)
                    let manifest = SnapshotManifest(id: id, createdAt: .now(), workspace: workspace, excludes: settings.excludes, sha256: String(hex),
                                                    bytes: Int(info.st_size), entries: list.standardOutput.filter { $0 == 10 }.count,
                                                    fingerprint: print)
                    // Flushing a large archive can take seconds: a helper's
                    // wait, not the loop's.
                    run(["sync", archive], in: directory, timeout: .seconds(600)) { [self] synced in
                        guard !aborted else { return finish(.failed("aborted")) }
                        guard synced.succeeded else { return finish(.failed("sync failed: \(Self.firstLine(synced))")) }
                        publish(manifest, from: directory, finish: finish)
                    }
                }
            }
        }
    }

    /// The manifest (synced with the file), then the rename that makes the
    /// snapshot whole, retention, and the remote copies.
    private func publish(_ manifest: SnapshotManifest, from directory: Int32, finish: @escaping (Outcome) -> Void) {
        guard let store else { return finish(.failed("SUPERVISOR_BACKUP_MOUNT_PATH=\(settings.mountPath): closed")) }
        let file = openat(directory, "manifest.json", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        let bytes = Array(manifest.json.utf8)
        var failure = file >= 0 ? 0 : errno
        var written = -1
        if file >= 0 {
            do {
                written = try retryingOnInterrupt { bytes.withUnsafeBytes { write(file, $0.baseAddress, $0.count) } }
            } catch {
                failure = error.rawValue
            }
            fsync(file)
            close(file)
        }
        guard written == bytes.count else {
            return finish(.failed("\(settings.mountPath)/.partial-\(manifest.id)/manifest.json: cannot write: \(String(cString: strerror(failure)))"))
        }
        fsync(directory)
        do {
            try store.publish(manifest.id)
        } catch {
            return finish(.failed(error.description))
        }
        close(directory)
        partial = nil
        let removed = store.prune(keepLast: settings.keepLast, maxAge: settings.maxAge, now: .now())
        guard remote.configured else { return finish(.created(manifest, removed: removed)) }
        // Whole locally first; a failed copy leaves it that way.
        remote.upload(manifest, store: store) { [self] lines in
            remoteResult = lines
            finish(.created(manifest, removed: removed))
        }
    }

    /// Ends a running backup: its helper is killed, the partial snapshot
    /// removed when the helper's exit comes back; earlier ones untouched.
    public func abort() {
        guard running else { return }
        aborted = true
        current?.kill()
        remote.cancel()
    }

    private func run(_ arguments: [String], directory: String? = nil, in directoryFD: Int32 = -1, timeout: Duration,
                     completion: @escaping (HelperResult) -> Void) {
        var command = HelperCommand(arguments: arguments, timeout: timeout)
        command.request.workingDirectory = directory
        command.request.workingDirectoryFD = directoryFD
        // In the daemon's own group: when its supervisor kills that group,
        // tar goes with it instead of writing on as an orphan.
        command.request.isolation = .sameGroup
        command.outputLimit = 256 << 20
        current = loop.runHelper(command, completion: completion)
    }

    static func firstLine(_ result: HelperResult) -> String {
        if result.timedOut { return "timed out" }
        if let error = result.spawnError { return "\(error)" }
        let text = String(decoding: result.standardError, as: UTF8.self).split(separator: "\n").first.map(String.init)
        return text ?? "\(result.status.map { "\($0)" } ?? "did not run")"
    }
}
