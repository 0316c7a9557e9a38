import BerthCore
import BerthProvisioning
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
    public let store: BackupStore
    var current: HelperHandle?
    let remote: RemoteCopies
    var remoteResult: [String] = []
    var partial: String?
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
        self.store = BackupStore(root: settings.mountPath)
        self.remote = RemoteCopies(loop: loop, settings: settings)
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
            if let partial { removeFlatDirectory(partial) }
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
        if !makeDirectories(settings.mountPath) {
            finish(.failed("SUPERVISOR_BACKUP_MOUNT_PATH=\(settings.mountPath): cannot create: \(String(cString: strerror(errno)))"))
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
            let directory = settings.mountPath + "/.partial-" + id
            guard mkdir(directory, 0o700) == 0 else {
                return finish(.failed("\(directory): cannot create: \(String(cString: strerror(errno)))"))
            }
            partial = directory
            archive(id: id, into: directory, fingerprint: print, finish: finish)
        }
        return true
    }

    private func archive(id: String, into directory: String, fingerprint print: String, finish: @escaping (Outcome) -> Void) {
        let archive = directory + "/" + SnapshotManifest.archiveName
        var tar = ["tar", "--create", "--gzip", "--file", archive, "--numeric-owner", "--warning=no-file-changed", "--warning=no-file-removed"]
        tar += settings.excludes.map { "--exclude=" + $0 }
        tar.append(".")
        run(tar, directory: workspace, timeout: .seconds(3600)) { [self] result in
            guard !aborted else { return finish(.failed("aborted")) }
            // 1: a file changed while it was read; the archive is whole.
            guard result.status == .exited(0) || result.status == .exited(1), !result.timedOut else {
                return finish(.failed("tar failed: \(Self.firstLine(result))"))
            }
            run(["sha256sum", archive], directory: "/", timeout: .seconds(600)) { [self] sum in
                guard !aborted else { return finish(.failed("aborted")) }
                guard sum.succeeded, let hex = String(decoding: sum.standardOutput, as: UTF8.self).split(separator: " ").first, hex.count == 64 else {
                    return finish(.failed("sha256sum failed: \(Self.firstLine(sum))"))
                }
                // Read back before it counts: a truncated archive fails here.
                run(["tar", "--list", "--gzip", "--file", archive], directory: "/", timeout: .seconds(3600)) { [self] list in
                    guard !aborted else { return finish(.failed("aborted")) }
                    guard list.succeeded else { return finish(.failed("the archive does not read back: \(Self.firstLine(list))")) }
                    var info = stat()
                    stat(archive, &info)
                    let manifest = SnapshotManifest(id: id, createdAt: .now(), workspace: workspace, excludes: settings.excludes, sha256: String(hex),
                                                    bytes: Int(info.st_size), entries: list.standardOutput.filter { $0 == 10 }.count,
                                                    fingerprint: print)
                    // Flushing a large archive can take seconds: a helper's
                    // wait, not the loop's.
                    run(["sync", archive], directory: "/", timeout: .seconds(600)) { [self] synced in
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
    private func publish(_ manifest: SnapshotManifest, from directory: String, finish: @escaping (Outcome) -> Void) {
        do {
            try AtomicFile.write(Array(manifest.json.utf8), to: directory + "/manifest.json", mode: 0o600)
        } catch {
            return finish(.failed("\(error)"))
        }
        syncDirectory(directory)
        guard rename(directory, settings.mountPath + "/" + manifest.id) == 0 else {
            return finish(.failed("\(directory): cannot rename: \(String(cString: strerror(errno)))"))
        }
        partial = nil
        syncDirectory(settings.mountPath)
        let removed = store.prune(keepLast: settings.keepLast, maxAge: settings.maxAge, now: .now())
        guard remote.configured else { return finish(.created(manifest, removed: removed)) }
        // Whole locally first; a failed copy leaves it that way.
        remote.upload(manifest, from: settings.mountPath + "/" + manifest.id) { [self] lines in
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

    private func run(_ arguments: [String], directory: String, timeout: Duration, completion: @escaping (HelperResult) -> Void) {
        var command = HelperCommand(arguments: arguments, timeout: timeout)
        command.request.workingDirectory = directory
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

/// mkdir -p for the backup root; an existing one keeps its owner and mode
/// (a mounted volume's), unlike AtomicFile.ensureDirectory.
private func makeDirectories(_ path: String) -> Bool {
    var prefix = ""
    for part in path.split(separator: "/") {
        prefix += "/" + part
        if mkdir(prefix, 0o700) != 0 && errno != EEXIST { return false }
    }
    return true
}
