import BerthCore
import Glibc

/// Takes snapshots of the workspace with restic, a helper process at low
/// CPU and I/O priority (the loop never waits on the disk or the network):
/// into the repository on the backup mount, then into the remote one (S3
/// or Azure) when one is set, each followed by restic's own retention
/// (`forget --prune`). One at a time; `abort` asks restic to stop (it
/// removes its lock), and the repository keeps only whole snapshots.
public final class BackupRunner {
    public enum Outcome: Sendable, Equatable {
        /// The local snapshot, and how many older ones retention removed.
        case created(ResticBackupSummary, removed: Int)
        case skipped(String)
        case failed(String)
    }

    public struct LastRun: Sendable {
        public var finishedAt: WallTime
        public var milliseconds: Int64
        public var reason: String
        public var outcome: Outcome
        /// The remote repository's line: "s3 ok", "azure failed: ...".
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
    var aborted = false
    public private(set) var running = false
    public private(set) var lastRun: LastRun?
    public private(set) var created = 0
    public private(set) var failures = 0
    public private(set) var skips = 0
    /// The local repository's snapshots, oldest first, as last listed.
    public private(set) var snapshots: [ResticSnapshot] = []
    /// Whether the remote repository (if any) got the last snapshot made
    /// since the supervisor started; unknown before one is made.
    var remoteHasLast = false
    /// Repositories known to exist (`restic init` done or not needed).
    var initialized: Set<String> = []
    /// When each repository (by location) was last checked, and how it went.
    var lastChecks: [String: UInt64] = [:]
    /// The latest check's line per repository, and this backup's checks.
    public private(set) var checks: [String] = []
    public private(set) var checkedNow: [String] = []
    /// `prepare` is at work; the one backup asked for meanwhile.
    var preparing = false
    var waitingStart: (() -> Void)?

    public init(loop: EventLoop, settings: SupervisorSettings.Backup, workspace: String) {
        self.loop = loop
        self.settings = settings
        self.workspace = workspace
        openStore()
    }

    /// The daemon trusts a store of its own uid or root's only: another
    /// owner (the workspace user) could rewrite the repository restore reads.
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

    /// The repositories, local first; nil and `storeError` when the store
    /// is refused or its password cannot be had.
    func repositories() -> [ResticRepository]? {
        guard let store = openStore() else { return nil }
        let password: Secret
        do {
            if let given = settings.password { password = given } else { password = try store.password(create: true) }
        } catch {
            storeError = error.description
            return nil
        }
        var all = [ResticRepository(kind: .local, location: store.repositoryPath, password: password)]
        if let remote = settings.remote {
            all.append(ResticRepository(kind: remote.kind, location: remote.location, credentials: remote.credentials, password: password,
                                        cacheDirectory: store.cachePath))
        }
        return all
    }

    /// At the daemon's start: locks a killed run left in the local
    /// repository go (the daemon is its only writer), and the snapshot list
    /// is read for the status and the unchanged-since check.
    /// A backup asked for meanwhile waits for it (it must not meet the lock).
    public func prepare() {
        guard let local = repositories()?.first, localRepositoryExists() else { return }
        initialized.insert(local.location)
        preparing = true
        run(local, ["unlock", "--remove-all"], timeout: .seconds(60)) { [self] _ in
            run(local, ["snapshots", "--json", "--tag", ResticSnapshot.tag], timeout: .seconds(300)) { [self] result in
                if result.succeeded, let list = ResticSnapshot.parseList(result.standardOutput) { snapshots = list }
                preparing = false
                current = nil
                if let waiting = waitingStart {
                    waitingStart = nil
                    waiting()
                }
            }
        }
    }

    func localRepositoryExists() -> Bool { store?.hasRepository ?? false }

    /// When a backup is skipped: the listing's fingerprint equals the last
    /// snapshot's, and then as the rule says.
    public enum SkipRule: Sendable, Equatable {
        /// Asked for (POST /backup, SIGUSR1): skipped only when nothing
        /// changed since the last snapshot and every repository has it (as
        /// restic's --skip-if-unchanged: an identical snapshot would only
        /// push a distinct one out of SUPERVISOR_BACKUP_KEEP).
        case whenUnchangedEverywhere
        /// The schedule's: also no activity since the last snapshot.
        case whenIdleAndUnchanged(activeSinceLast: Bool)
        /// At shutdown: unchanged is enough (the user is leaving either
        /// way), and no integrity check follows (it would eat the budget).
        case atShutdownWhenUnchanged
    }

    /// false when one is already running.
    @discardableResult
    public func start(reason: String, skip rule: SkipRule, done: @escaping (Outcome) -> Void = { _ in }) -> Bool {
        guard !running, waitingStart == nil else { return false }
        if preparing {
            waitingStart = { [self] in start(reason: reason, skip: rule, done: done) }
            return true
        }
        running = true
        aborted = false
        checkedNow = []
        var remoteLines: [String] = []
        let started = WallTime.now()
        let finish: (Outcome) -> Void = { [self] outcome in
            running = false
            current = nil
            switch outcome {
            case .created: created += 1
            case .skipped: skips += 1
            case .failed: failures += 1
            }
            let now = WallTime.now()
            lastRun = LastRun(finishedAt: now, milliseconds: now.milliseconds - started.milliseconds, reason: reason, outcome: outcome,
                              remote: remoteLines)
            done(outcome)
        }
        guard let repositories = repositories() else {
            finish(.failed(storeError ?? "SUPERVISOR_BACKUP_MOUNT_PATH=\(settings.mountPath): refused"))
            return true
        }
        guard access(workspace, R_OK | X_OK) == 0 else {
            finish(.failed("WORKSPACE_DIR=\(workspace): cannot read: \(String(cString: strerror(errno)))"))
            return true
        }
        // The listing the fingerprint is made of: names, types, sizes,
        // modification and change times, inodes, modes and link targets
        // (what restic itself compares), and the excludes.
        let listing = HelperCommand(arguments: ["find", ".", "-printf", Self.listingFormat], timeout: .seconds(600))
        helper(listing, directory: workspace) { [self] result in
            guard !aborted else { return finish(.failed("aborted")) }
            guard result.succeeded else { return finish(.failed("listing \(workspace) failed: \(Self.firstLine(result))")) }
            let print = fingerprint(result.standardOutput + Array(settings.excludes.joined(separator: "\n").utf8))
            if let last = snapshots.last, last.fingerprint == print {
                switch rule {
                case .whenIdleAndUnchanged(activeSinceLast: true): break
                case .whenUnchangedEverywhere:
                    if repositories.count == 1 || remoteHasLast { return finish(.skipped("unchanged since \(last.shortID), which stands")) }
                case .whenIdleAndUnchanged(activeSinceLast: false): return finish(.skipped("idle and unchanged since \(last.shortID)"))
                case .atShutdownWhenUnchanged: return finish(.skipped("unchanged since \(last.shortID)"))
                }
            }
            let local = repositories[0]
            let retention = rule != .atShutdownWhenUnchanged
            snapshot(local, fingerprint: print, retention: retention) { [self] result in
                switch result {
                case .failure(let failure): finish(.failed(failure.message))
                case .success(let (summary, removed)):
                    // Checked: the repositories this backup reached.
                    let created = { [self] (reached: [ResticRepository]) in
                        guard rule != .atShutdownWhenUnchanged else { return finish(.created(summary, removed: removed)) }
                        checkIfDue(reached) { finish(.created(summary, removed: removed)) }
                    }
                    remoteHasLast = false
                    guard repositories.count > 1, !aborted else { return created([local]) }
                    let remote = repositories[1]
                    snapshot(remote, fingerprint: print, retention: retention) { [self] result in
                        switch result {
                        case .success:
                            remoteLines = ["\(remote.kind.rawValue) ok"]
                            remoteHasLast = true
                            created([local, remote])
                        case .failure(let failure):
                            remoteLines = ["\(remote.kind.rawValue) failed: \(failure.message)"]
                            created([local])
                        }
                    }
                }
            }
        }
        return true
    }

    struct Failure: Error { let message: String }

    /// One line a path: name, type, size, mtime, ctime, inode, mode, link target.
    static let listingFormat = "%P\\t%y\\t%s\\t%T@\\t%C@\\t%i\\t%m\\t%l\\n"

    /// init when needed, backup, then forget --prune, whose list of what it
    /// kept is the local repository's list of snapshots. At shutdown no
    /// forget: retention can wait for the next start, the budget cannot.
    private func snapshot(_ repository: ResticRepository, fingerprint print: String, retention: Bool,
                          done: @escaping (Result<(ResticBackupSummary, Int), Failure>) -> Void) {
        ensureInitialized(repository) { [self] failure in
            guard !aborted else { return done(.failure(Failure(message: "aborted"))) }
            if let failure { return done(.failure(Failure(message: failure))) }
            var arguments = ["backup", "--json", "--host", "workspace", "--tag", ResticSnapshot.tag, "--tag", ResticSnapshot.fingerprintTag + print]
            arguments += settings.excludes.flatMap { ["--exclude", $0] }
            arguments.append(".")
            run(repository, arguments, timeout: .seconds(6 * 3600), directory: workspace, background: true) { [self] result in
                guard !aborted else { return done(.failure(Failure(message: "aborted"))) }
                // 3: the snapshot is made, but some files could not be read.
                guard result.status == .exited(0) || result.status == .exited(3), !result.timedOut,
                      let summary = ResticBackupSummary.parse(result.standardOutput) else {
                    return done(.failure(Failure(message: "restic backup: \(ResticRepository.failure(result))")))
                }
                guard retention else { return done(.success((summary, 0))) }
                forget(repository) { [self] kept, removed in
                    // What retention kept is the local repository's list now.
                    if repository.kind == .local, let kept { snapshots = kept }
                    done(.success((summary, removed)))
                }
            }
        }
    }

    /// `restic check` of each repository not checked for
    /// SUPERVISOR_BACKUP_CHECK_INTERVAL (nor since the daemon started):
    /// restic reads the structure and the index, not every pack. `checks`
    /// holds the latest line per repository ("local: ok", "s3: failed: ...").
    private func checkIfDue(_ repositories: [ResticRepository], done: @escaping () -> Void) {
        let due = repositories.filter { repository in
            lastChecks[repository.location].map { MonotonicClock.now() - $0 >= UInt64(settings.checkInterval.components.seconds) * 1_000_000_000 } ?? true
        }
        var lines = checks
        checkedNow = []
        func next(_ index: Int) {
            guard index < due.count, !aborted else {
                checks = lines
                return done()
            }
            let repository = due[index]
            run(repository, ["check"], timeout: .seconds(6 * 3600), background: true) { [self] result in
                lastChecks[repository.location] = MonotonicClock.now()
                let line = "\(repository.kind.rawValue): " + (result.succeeded ? "ok" : "failed: \(ResticRepository.failure(result))")
                lines.removeAll { $0.hasPrefix(repository.kind.rawValue + ": ") }
                lines.append(line)
                checkedNow.append(line)
                next(index + 1)
            }
        }
        next(0)
    }

    /// `restic init` where there is no repository yet: the mount's is looked
    /// at, a remote one asked once (`cat config`).
    private func ensureInitialized(_ repository: ResticRepository, done: @escaping (String?) -> Void) {
        guard !initialized.contains(repository.location) else { return done(nil) }
        let initialize = { [self] in
            run(repository, ["init"], timeout: .seconds(300)) { [self] made in
                guard made.succeeded else { return done("restic init: \(ResticRepository.failure(made))") }
                initialized.insert(repository.location)
                done(nil)
            }
        }
        guard repository.kind != .local else {
            if localRepositoryExists() {
                initialized.insert(repository.location)
                return done(nil)
            }
            return initialize()
        }
        run(repository, ["cat", "config"], timeout: .seconds(300)) { [self] exists in
            if exists.succeeded {
                initialized.insert(repository.location)
                return done(nil)
            }
            guard ResticRepository.isMissing(exists) else { return done("restic: \(ResticRepository.failure(exists))") }
            initialize()
        }
    }

    /// restic's retention over the daemon's snapshots: the newest
    /// SUPERVISOR_BACKUP_KEEP, and of those only what is younger than
    /// SUPERVISOR_BACKUP_MAX_AGE (the newest always stays). restic keeps
    /// what any one rule keeps, so the two rules are two forgets, one after
    /// the other, and the last prunes; `done` hears how many snapshots went.
    private func forget(_ repository: ResticRepository, done: @escaping ([ResticSnapshot]?, Int) -> Void) {
        var policies = [["--keep-last", "\(settings.keepLast)"]]
        if let maxAge = settings.maxAge {
            // restic's finest unit for it is the hour.
            let hours = max(1, (maxAge.components.seconds + 3599) / 3600)
            policies.append(["--keep-within", "\(hours)h", "--keep-last", "1"])
        }
        var removed = 0
        func next(_ index: Int, kept: [ResticSnapshot]?) {
            guard index < policies.count else { return done(kept, removed) }
            let prune = index == policies.count - 1 ? ["--prune"] : []
            // --group-by '': one history, whatever host or path a snapshot has.
            run(repository, ["forget", "--json", "--group-by", "", "--tag", ResticSnapshot.tag] + policies[index] + prune, timeout: .seconds(3600),
                background: true) { result in
                let answer = ResticSnapshot.parseForget(result.standardOutput)
                removed += answer?.removed ?? 0
                next(index + 1, kept: answer?.kept)
            }
        }
        next(0, kept: nil)
    }

    /// Ends a running backup: restic hears SIGINT (it removes its lock and
    /// leaves only whole snapshots); the completion follows its exit.
    public func abort() {
        guard running else { return }
        aborted = true
        current?.signal(SIGINT)
    }

    private func run(_ repository: ResticRepository, _ arguments: [String], timeout: Duration, directory: String? = nil, background: Bool = false,
                     completion: @escaping (HelperResult) -> Void) {
        helper(repository.command(arguments, timeout: timeout, background: background), directory: directory, completion: completion)
    }

    private func helper(_ command: HelperCommand, directory: String?, completion: @escaping (HelperResult) -> Void) {
        var command = command
        command.request.workingDirectory = directory ?? "/"
        // In the daemon's own group: when its supervisor kills that group,
        // restic goes with it instead of writing on as an orphan.
        command.request.isolation = .sameGroup
        command.outputLimit = 64 << 20
        current = loop.runHelper(command, completion: completion)
    }

    static func firstLine(_ result: HelperResult) -> String {
        if result.timedOut { return "timed out" }
        if let error = result.spawnError { return "\(error)" }
        let text = String(decoding: result.standardError, as: UTF8.self).split(separator: "\n").first.map(String.init)
        return text ?? "\(result.status.map { "\($0)" } ?? "did not run")"
    }
}
