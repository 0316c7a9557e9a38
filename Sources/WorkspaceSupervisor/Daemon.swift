import BerthCore
import BerthHTTP
import Glibc

/// The workspace supervisor: polls activity, reports it, serves its status
/// and takes backups, all on one event loop. SIGTERM/SIGINT take a last
/// backup within the shutdown budget (see `shutDown`) and exit 0; SIGUSR1
/// takes a backup.
public final class Daemon {
    let settings: SupervisorSettings
    let loop: EventLoop
    let startedAt = WallTime.now()
    let startedMonotonic = MonotonicClock.now()
    var activity = ActivitySnapshot()
    var reporter: ActivityReporter?
    var backups: BackupRunner?
    var server: HTTPServer?
    var activeSinceLastBackup = false
    var stopping = false
    let log: (String) -> Void

    public init(settings: SupervisorSettings, loop: EventLoop, log: @escaping (String) -> Void) {
        self.settings = settings
        self.loop = loop
        self.log = log
    }

    /// Runs until SIGTERM/SIGINT; the exit status (2: the API address is unusable).
    public func run() -> Int32 {
        // The repository holds the workspace: what restic and the daemon
        // write is the supervisor's alone, whatever umask it was started with.
        umask(0o077)
        if let agent = settings.agent {
            reporter = ActivityReporter(loop: loop, agent: agent) { [unowned self] in activity }
        }
        if let backup = settings.backup {
            let runner = BackupRunner(loop: loop, settings: backup, workspace: settings.workspaceDirectory)
            if let error = runner.storeError { log("backups refused: \(error)") }
            runner.prepare()
            backups = runner
            scheduleBackup(after: backup.interval)
        }
        if settings.httpEnabled {
            // POST /backup and /status are for the platform; off loopback
            // anyone on the network (or in the workspace) could call them.
            guard settings.httpToken != nil || Self.mayListenWithoutToken(settings.httpAddress) else {
                log("SUPERVISOR_HTTP_ADDR=\(settings.httpAddress) is not a loopback address: set SUPERVISOR_HTTP_TOKEN (or SUPERVISOR_HTTP_TOKEN_FILE) "
                    + "to require a bearer token, or listen on 127.0.0.1")
                return 2
            }
            do {
                let made = try HTTPServer(address: settings.httpAddress, loop: loop) { [unowned self] in answer($0) }
                server = made
                log("status API on \(settings.httpAddress) (port \(made.port))")
            } catch {
                log("SUPERVISOR_HTTP_ADDR=\(error)")
                return 2
            }
        }
        loop.onSignal = { [unowned self] signal in
            switch signal.number {
            case SIGTERM, SIGINT:
                shutDown()
            case SIGUSR1:
                takeBackup(reason: "SIGUSR1", skip: .whenUnchangedEverywhere)
            default:
                break
            }
        }
        poll()
        reporter?.start()
        loop.run()
        return 0
    }

    /// SIGTERM: a last backup when the workspace changed since the last
    /// snapshot (or the running one finishing), within the shutdown
    /// budget; past it restic is stopped (its lock removed) and the
    /// previous snapshot stands. A second SIGTERM gives up at once.
    private func shutDown() {
        guard !stopping else { return giveUp(why: "a second signal") }
        stopping = true
        log("stopping")
        reporter?.stop()
        guard let backups else { return loop.stop() }
        let budget = settings.backup?.shutdownBudget ?? .zero
        guard budget > .zero else {
            guard backups.running else { return loop.stop() }
            return giveUp(why: "no shutdown budget")
        }
        _ = loop.schedule(after: budget) { [unowned self] in giveUp(why: "the \(budget.shortDescription) budget ran out") }
        if backups.running {
            log("letting the running backup finish within \(budget.shortDescription)")
        } else {
            log("a last backup within \(budget.shortDescription), if the workspace changed")
            takeBackup(reason: "shutdown", skip: .atShutdownWhenUnchanged)
        }
    }

    /// The backup's completion (restic ended, its lock removed) stops the
    /// loop; bounded in case it never comes.
    private func giveUp(why: String) {
        guard let backups, backups.running else { return loop.stop() }
        let standing = backups.snapshots.last.map { "the previous snapshot \($0.shortID) stands" } ?? "there is no snapshot yet"
        log("aborting the running backup (\(why)): \(standing)")
        backups.abort()
        _ = loop.schedule(after: .milliseconds(1500)) { [unowned self] in loop.stop() }
    }

    private func poll() {
        let counts = TCPTable.read(onLocalPorts: [settings.idePort, settings.sshPort])
        let before = activity
        activity.update(ide: counts[settings.idePort] ?? 0, ssh: counts[settings.sshPort] ?? 0, sessions: SSHSessions.count(), at: .now())
        if activity.isActive { activeSinceLastBackup = true }
        if activity.differsInUse(from: before) {
            log("activity: ide \(activity.activeIDEConnections), ssh \(activity.activeSSHConnections), ssh sessions \(activity.sshSessions)")
            reporter?.report()
            // The user left: save their work now rather than at the interval.
            if before.isActive, !activity.isActive, settings.backup?.syncOnActivity == true {
                takeBackup(reason: "activity ended", skip: .whenIdleAndUnchanged(activeSinceLast: usedSinceLastBackup))
            }
        }
        _ = loop.schedule(after: settings.monitorInterval) { [unowned self] in poll() }
    }

    private func scheduleBackup(after delay: Duration) {
        _ = loop.schedule(after: delay) { [unowned self] in
            takeBackup(reason: "interval", skip: .whenIdleAndUnchanged(activeSinceLast: usedSinceLastBackup))
            scheduleBackup(after: delay)
        }
    }

    var usedSinceLastBackup: Bool { activeSinceLastBackup || activity.isActive }

    @discardableResult
    private func takeBackup(reason: String, skip rule: BackupRunner.SkipRule) -> Bool {
        // Once stopping, only the last backup starts.
        guard let backups, !stopping || rule == .atShutdownWhenUnchanged else { return false }
        return backups.start(reason: reason, skip: rule) { [unowned self] outcome in
            switch outcome {
            case .created(let summary, let removed):
                activeSinceLastBackup = activity.isActive
                let remote = backups.lastRun?.remote ?? []
                log("backup \(summary.snapshotID) (\(reason)): \(summary.dataAdded) bytes added, \(summary.filesNew) new, "
                    + "\(summary.filesChanged) changed, \(summary.filesUnmodified) unchanged files"
                    + (removed == 0 ? "" : "; removed \(removed) older")
                    + (remote.isEmpty ? "" : "; " + remote.joined(separator: ", "))
                    + (backups.checkedNow.isEmpty ? "" : "; check " + backups.checkedNow.joined(separator: ", ")))
            case .skipped(let why):
                log("backup skipped (\(reason)): \(why)")
            case .failed(let why):
                log("backup failed (\(reason)): \(why)")
            }
            if stopping { loop.stop() }
        }
    }

    // MARK: the status API

    /// false only for an address that parses and is not loopback; one that
    /// does not parse is left to HTTPServer, whose error names it.
    static func mayListenWithoutToken(_ address: String) -> Bool {
        guard let colon = address.lastIndex(of: ":"), Int(address[address.index(after: colon)...]) != nil else { return true }
        var host = String(address[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        var v4 = in_addr()
        if inet_pton(AF_INET, host.isEmpty ? "0.0.0.0" : host, &v4) == 1 { return UInt32(bigEndian: v4.s_addr) >> 24 == 127 }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 {
            return withUnsafeBytes(of: v6) { $0.dropLast().allSatisfy { $0 == 0 } && $0.last == 1 }
        }
        return true
    }

    /// `Authorization: Bearer TOKEN`, compared in time that does not depend
    /// on where the first wrong byte is.
    func authorized(_ request: HTTPServerRequest) -> Bool {
        guard let token = settings.httpToken else { return true }
        let expected = Array("Bearer ".utf8) + token.bytes
        let given = Array((request.headers["authorization"] ?? "").utf8)
        var difference: UInt8 = given.count == expected.count ? 0 : 1
        for index in expected.indices {
            difference |= expected[index] ^ (index < given.count ? given[index] : 0)
        }
        return difference == 0
    }

    func answer(_ request: HTTPServerRequest) -> HTTPServerResponse {
        guard authorized(request) else {
            return HTTPServerResponse(status: 401, contentType: "application/json", body: "{\"error\": \"a bearer token is required\"}\n")
        }
        switch (request.method, request.path) {
        case ("GET", "/health"), ("HEAD", "/health"):
            return HTTPServerResponse(status: 200, contentType: "application/json", body: "{\"status\": \"ok\"}\n")
        case ("GET", "/status"), ("HEAD", "/status"):
            return HTTPServerResponse(status: 200, contentType: "application/json", body: statusJSON())
        case ("GET", "/metrics"), ("HEAD", "/metrics"):
            return HTTPServerResponse(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: metrics())
        case ("POST", "/backup"):
            guard backups != nil else {
                return HTTPServerResponse(status: 503, contentType: "application/json",
                                          body: "{\"error\": \"backups are off: SUPERVISOR_BACKUP_MOUNT_PATH is not set\"}\n")
            }
            guard takeBackup(reason: "POST /backup", skip: .whenUnchangedEverywhere) else {
                return HTTPServerResponse(status: 409, contentType: "application/json", body: "{\"error\": \"a backup is already running\"}\n")
            }
            return HTTPServerResponse(status: 202, contentType: "application/json", body: "{\"started\": true}\n")
        case (_, "/health"), (_, "/status"), (_, "/metrics"), (_, "/backup"):
            return HTTPServerResponse(status: 405, body: "method not allowed\n")
        default:
            return HTTPServerResponse(status: 404, body: "not found\n")
        }
    }

    var uptimeSeconds: Double { Double(MonotonicClock.now() - startedMonotonic) / 1e9 }

    func statusJSON() -> String {
        func time(_ value: WallTime?) -> String { value.map { JSON.quote($0.iso8601) } ?? "null" }
        var backup = "null"
        if let backups {
            var last = "null"
            if let run = backups.lastRun {
                let (result, detail): (String, String)
                switch run.outcome {
                case .created(let summary, _): (result, detail) = ("created", summary.snapshotID)
                case .skipped(let why): (result, detail) = ("skipped", why)
                case .failed(let why): (result, detail) = ("failed", why)
                }
                last = "{\"finishedAt\": \(time(run.finishedAt)), \"reason\": \(JSON.quote(run.reason)), \"result\": \(JSON.quote(result)), "
                    + "\"detail\": \(JSON.quote(detail)), \"durationMs\": \(run.milliseconds), "
                    + "\"remote\": [\(run.remote.map(JSON.quote).joined(separator: ", "))]}"
            }
            let snapshots = backups.snapshots
            backup = "{\"running\": \(backups.running), \"mountPath\": \(JSON.quote(backups.settings.mountPath)), \"snapshots\": \(snapshots.count), "
                + "\"latest\": \(snapshots.last.map { JSON.quote($0.shortID) } ?? "null"), \"last\": \(last), "
                + "\"checks\": [\(backups.checks.map(JSON.quote).joined(separator: ", "))], "
                + "\"storeError\": \(backups.storeError.map(JSON.quote) ?? "null")}"
        }
        var agent = "null"
        if let reporter {
            agent = "{\"sent\": \(reporter.sent), \"failed\": \(reporter.failed), \"lastSuccess\": \(time(reporter.lastSuccess)), "
                + "\"lastError\": \(reporter.lastError.map(JSON.quote) ?? "null")}"
        }
        let idle = activity.isActive ? 0 : (WallTime.now().milliseconds - (activity.lastActivity ?? startedAt).milliseconds) / 1000
        return "{\"startedAt\": \(time(startedAt)), \"uptimeSeconds\": \(Int(uptimeSeconds)), \"workspace\": \(JSON.quote(settings.workspaceDirectory)), "
            + "\"activity\": {\"lastIDEActivity\": \(time(activity.lastIDEActivity)), \"lastSSHActivity\": \(time(activity.lastSSHActivity)), "
            + "\"activeIDEConnections\": \(activity.activeIDEConnections), \"activeSSHConnections\": \(activity.activeSSHConnections), "
            + "\"sshSessions\": \(activity.sshSessions), \"idleSeconds\": \(idle)}, \"backup\": \(backup), \"agent\": \(agent)}\n"
    }

    func metrics() -> String {
        var lines: [String] = []
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(String, String)]) {
            lines.append("# HELP \(name) \(help)")
            lines.append("# TYPE \(name) \(type)")
            for (labels, value) in samples { lines.append(name + labels + " " + value) }
        }
        func seconds(_ time: WallTime?) -> String { time.map { String(Double($0.milliseconds) / 1000) } ?? "0" }
        metric("workspace_supervisor_uptime_seconds", "gauge", "Seconds since the supervisor started.", [("", String(uptimeSeconds))])
        metric("workspace_supervisor_active_connections", "gauge", "Established connections by kind.",
               [("{kind=\"ide\"}", "\(activity.activeIDEConnections)"), ("{kind=\"ssh\"}", "\(activity.activeSSHConnections)")])
        metric("workspace_supervisor_ssh_sessions", "gauge", "Live SSH sessions.", [("", "\(activity.sshSessions)")])
        metric("workspace_supervisor_last_activity_timestamp_seconds", "gauge", "Last activity by kind (0: none yet).",
               [("{kind=\"ide\"}", seconds(activity.lastIDEActivity)), ("{kind=\"ssh\"}", seconds(activity.lastSSHActivity))])
        if let backups {
            metric("workspace_supervisor_backups_total", "counter", "Backups by result.",
                   [("{result=\"created\"}", "\(backups.created)"), ("{result=\"skipped\"}", "\(backups.skips)"), ("{result=\"failed\"}", "\(backups.failures)")])
            metric("workspace_supervisor_backup_running", "gauge", "1 while a backup runs.", [("", backups.running ? "1" : "0")])
            metric("workspace_supervisor_snapshots", "gauge", "Complete snapshots kept.", [("", "\(backups.snapshots.count)")])
        }
        if let reporter {
            metric("workspace_supervisor_reports_total", "counter", "Activity reports by result.",
                   [("{result=\"sent\"}", "\(reporter.sent)"), ("{result=\"failed\"}", "\(reporter.failed)")])
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
