import BerthCore
import BerthSystemd
import CBerth
import Glibc
import SystemPackage

/// Keeps services running as berth's children, all on berth's loop: starts
/// each once its dependencies are ready, restarts it by its policy with
/// backoff, checks its health, relays its output, and stops them in
/// reverse dependency order.
public final class Supervisor {
    /// A service's state as `berth status` names it.
    public enum State: String, Sendable {
        case waiting, starting, ready, backoff, stopping, stopped, failed, done
    }

    /// What a service does when its stop is over.
    public enum AfterStop: Sendable { case stay, restart }

    /// A service's life. Each case carries what it needs (the process
    /// while there is one); `ended` is the one place a process's exit
    /// moves it on, the control verbs and start-up the others.
    public enum Phase: Sendable {
        /// Not started: its dependencies are not ready yet.
        case waiting
        /// Running, not ready yet (readiness probe, notify, or deadline).
        case starting(pid: pid_t)
        case ready(pid: pid_t)
        /// Exited; restarts when the backoff timer fires.
        case backingOff
        /// Stop signal sent (SIGKILL after the grace); then stays down or
        /// starts again.
        case stopping(pid: pid_t, then: AfterStop)
        case stopped
        /// Failed for good; dependents fail with it.
        case failed
        /// A task whose process exited 0.
        case done

        var pid: pid_t? {
            switch self {
            case .starting(let pid), .ready(let pid), .stopping(let pid, _): pid
            case .waiting, .backingOff, .stopped, .failed, .done: nil
            }
        }
    }

    public struct SetupError: Error, CustomStringConvertible {
        public let description: String
    }

    /// A service as it is now.
    public final class Service {
        public let definition: ServiceDefinition
        public internal(set) var phase: Phase = .waiting
        public internal(set) var restarts = 0
        public internal(set) var lastExit: ChildStatus?
        public internal(set) var healthy = true
        public internal(set) var reason: String?
        public internal(set) var startedAt: UInt64 = 0
        public let recent = RecentLines()
        let identity: UserAccount?
        var crashTimes: [UInt64] = []
        var backoffAttempt = 0
        var healthFailures = 0
        /// One-off timers of the current run (readiness deadline, backoff,
        /// kill after grace); the repeating ones each hold one slot.
        var timers: [EventLoop.TimerID] = []
        var pollTimer: EventLoop.TimerID?
        var healthTimer: EventLoop.TimerID?
        var notify: NotifySocket?
        var streams: [ServiceStream] = []
        /// A task's streams after its process ended, read until what it
        /// left running closes them: a dev server started with `&` keeps
        /// writing, and a closed pipe would kill it with SIGPIPE.
        var leftoverStreams: [ServiceStream] = []
        /// Its next run is asked for by hand: it runs whatever it remembers.
        var forcedRun = false
        /// A task asked to run while it ran: once more when it ends.
        var runAgain = false
        /// What a task's last run left running, as found when it ended.
        public internal(set) var leftProcesses: [LeftProcess] = []
        /// When its last run ended (monotonic), for a task's timing.
        public internal(set) var endedAt: UInt64?

        init(definition: ServiceDefinition, identity: UserAccount?) {
            self.definition = definition
            self.identity = identity
        }

        public var name: String { definition.name }
        public var state: State {
            switch phase {
            case .waiting: .waiting
            case .starting: .starting
            case .ready: .ready
            case .backingOff: .backoff
            case .stopping: .stopping
            case .stopped: .stopped
            case .failed: .failed
            case .done: .done
            }
        }
        /// Its process, while there is one.
        public var pid: pid_t? { phase.pid }
        public var isReady: Bool { state == .ready }
        /// Ready, or failed/stopped/done for good: nothing more to wait for.
        var isSettled: Bool { state == .ready || state == .failed || state == .stopped || state == .done }
        /// What a dependent (`dependsOn`) needs: a service ready, a task done.
        var isSatisfied: Bool { definition.isTask ? state == .done : state == .ready }
    }

    public let services: [Service]
    let loop: EventLoop
    let environment: Environment
    let secrets: Environment
    let runDirectory: String
    let standardOutput: OutputSink
    let standardError: OutputSink
    let log: (String) -> Void
    /// Where the supervisor is, with the callbacks that stage still owes.
    private enum Stage {
        case created
        /// Until every required service is settled.
        case starting(requiredReady: () -> Void, fatal: (String) -> Void)
        case running(fatal: (String) -> Void)
        /// `done`: nil once it was called.
        case stopping(done: (() -> Void)?)
    }
    private var stage = Stage.created
    var stopping: Bool {
        if case .stopping = stage { true } else { false }
    }
    private var onFatal: ((String) -> Void)? {
        switch stage {
        case .starting(_, let fatal), .running(let fatal): fatal
        case .created, .stopping: nil
        }
    }
    private var control: ControlServer?
    /// Who may use the control socket besides root and berth's own user.
    private(set) var workspaceUsers: Set<uid_t> = []
    /// journald, when its socket is there: every line also as an entry.
    private let journal = Journal.ifPresent()

    /// `environment`: what services inherit (no provisioning secrets);
    /// `secrets`: the values a service may opt into with pass_secrets.
    public init(definitions: [ServiceDefinition], loop: EventLoop, environment: Environment, secrets: Environment,
                runDirectory: String, standardOutput: OutputSink, standardError: OutputSink,
                log: @escaping (String) -> Void) throws(SetupError) {
        let ordered = try Self.order(definitions)
        var services: [Service] = []
        for definition in ordered {
            var identity: UserAccount?
            if let user = definition.user {
                do {
                    identity = try UserAccount.lookup(user)
                } catch {
                    throw SetupError(description: "service \(definition.name): user '\(user)': no such user in /etc/passwd")
                }
                if let group = definition.group, let gid = UserAccount.groupID(group) {
                    identity = UserAccount(name: identity!.name, uid: identity!.uid, gid: gid, home: identity!.home, shell: identity!.shell, groups: [gid])
                } else if let group = definition.group {
                    throw SetupError(description: "service \(definition.name): group '\(group)': no such group in /etc/group")
                }
            }
            services.append(Service(definition: definition, identity: identity))
        }
        self.services = services
        self.loop = loop
        self.environment = environment
        self.secrets = secrets
        self.runDirectory = runDirectory
        self.standardOutput = standardOutput
        self.standardError = standardError
        self.log = log
    }

    public func service(named name: String) -> Service? {
        services.first { $0.name == name }
    }

    // MARK: start

    /// Starts every service whose dependencies allow. `requiredReady` runs
    /// once, when every required service is ready (or failed for good
    /// without being critical); `fatal` when a critical one fails for good.
    public func start(requiredReady: @escaping () -> Void, fatal: @escaping (String) -> Void) {
        stage = .starting(requiredReady: requiredReady, fatal: fatal)
        for service in services where service.definition.runsWhenAsked { service.phase = .stopped }
        if services.contains(where: { $0.definition.readiness == .notify }) {
            _ = try? AtomicFile.ensureDirectory(runDirectory, mode: 0o755)
            _ = try? AtomicFile.ensureDirectory(runDirectory + "/notify", mode: 0o755)
        }
        startWhatCan()
    }

    private func startWhatCan() {
        guard !stopping else { return }
        for service in services where service.state == .waiting {
            if let refusal = service.definition.refusal {
                fail(service, refusal)
                continue
            }
            let dependencies = service.definition.dependsOn.compactMap(self.service(named:))
            if let failed = dependencies.first(where: { $0.state == .failed || $0.state == .stopped }) {
                fail(service, "needs \(failed.name), which \(failed.state == .failed ? "failed" : "stopped")")
                continue
            }
            let predecessors = service.definition.after.compactMap(self.service(named:))
            if dependencies.allSatisfy(\.isSatisfied), predecessors.allSatisfy(\.isSettled) { spawn(service) }
        }
        checkRequiredReady()
    }

    private func checkRequiredReady() {
        guard case .starting(let ready, let fatal) = stage else { return }
        if services.filter(\.definition.required).allSatisfy(\.isSettled) {
            stage = .running(fatal: fatal)
            ready()
        }
    }

    /// What the service (and its readiness and health probes) inherit:
    /// services' environment (no provisioning secrets), the ones it opted
    /// into, its user's HOME/USER/LOGNAME/SHELL, its own variables, and
    /// NOTIFY_SOCKET when it uses one.
    private func environment(for service: Service) -> Environment {
        let definition = service.definition
        var environment = self.environment
        for name in definition.passSecrets { environment[name] = secrets[name] }
        if let user = service.identity {
            environment["HOME"] = user.home
            environment["USER"] = user.name
            environment["LOGNAME"] = user.name
            environment["SHELL"] = user.shell
        }
        for (key, value) in definition.environment { environment[key] = value }
        if definition.isTask {
            environment[Self.taskMarker] = definition.name
            if service.forcedRun { environment["BERTH_TASK_FORCED"] = "1" }
        }
        if definition.readiness == .notify { environment["NOTIFY_SOCKET"] = notifySocketPath(service) }
        return environment
    }

    /// In a task's environment: what it leaves running is found by it.
    public static let taskMarker = "BERTH_TASK"

    private func notifySocketPath(_ service: Service) -> String {
        "\(runDirectory)/notify/\(service.name)"
    }

    /// How anything runs on the service's behalf: the service itself and
    /// its readiness and health probes alike, with its uid, groups,
    /// environment and working directory. One function for all of them: a
    /// probe that ran as root with the user's HOME would read the user's
    /// ~/.curlrc or PATH entries, and the user would act as root.
    private func spawnRequest(for service: Service, running arguments: [String]) -> SpawnRequest {
        var request = SpawnRequest(arguments: arguments)
        // A task's own session: what stays in it when it ends was left by it.
        request.isolation = service.definition.isTask ? .newSession : .newProcessGroup
        if let user = service.identity {
            request.identity = SpawnRequest.Identity(uid: user.uid, gid: user.gid, groups: user.groups)
            request.ambientCapabilities = service.definition.ambientCapabilities
        }
        request.noNewPrivileges = service.definition.noNewPrivileges
        request.environment = environment(for: service).lines
        request.workingDirectory = service.definition.workingDirectory ?? service.identity?.home ?? "/"
        return request
    }

    /// A readiness or health probe: collected like berth's other helpers,
    /// run exactly as the service runs.
    private func probe(_ service: Service, _ arguments: [String], timeout: Duration) -> HelperCommand {
        var command = HelperCommand(arguments: arguments, timeout: timeout)
        command.request = spawnRequest(for: service, running: arguments)
        return command
    }

    private func spawn(_ service: Service) {
        let definition = service.definition
        var request = spawnRequest(for: service, running: definition.command)
        if definition.readiness == .notify {
            let path = notifySocketPath(service)
            do {
                let socket = try NotifySocket(path: path, owner: service.identity?.uid, loop: loop)
                socket.onMessage = { [unowned self, unowned service] in notified(service, $0) }
                service.notify = socket
            } catch {
                return fail(service, "cannot create its notify socket \(path): \(error)")
            }
        }
        var outPipe: [Int32] = [-1, -1]
        var errPipe: [Int32] = [-1, -1]
        guard berth_pipe_cloexec(&outPipe) == 0, berth_pipe_cloexec(&errPipe) == 0 else {
            return fail(service, "cannot create pipes: \(String(cString: strerror(errno)))")
        }
        let devNull = open("/dev/null", O_RDONLY | O_CLOEXEC)
        request.standardInput = devNull
        request.standardOutput = outPipe[1]
        request.standardError = errPipe[1]
        defer {
            close(outPipe[1])
            close(errPipe[1])
            if devNull >= 0 { close(devNull) }
        }
        defer { service.forcedRun = false }
        let out = ServiceStream(name: definition.name, sink: standardOutput, recent: service.recent, journal: journal, masked: definition.maskedValues)
        let err = ServiceStream(name: definition.name, sink: standardError, recent: service.recent, journal: journal, isStandardError: true,
                                masked: definition.maskedValues)
        service.streams = [out, err]
        out.attach(outPipe[0], loop: loop)
        err.attach(errPipe[0], loop: loop)
        service.startedAt = MonotonicClock.now()
        service.endedAt = nil
        service.leftProcesses = []
        service.healthy = true
        service.healthFailures = 0
        service.reason = nil
        let pid: pid_t
        do {
            pid = try Spawner.spawn(request)
        } catch {
            log("\(definition.name): cannot start: \(error)")
            guard let failed = error.pid else {
                service.streams.forEach { $0.closeStream() }
                return ended(service, status: .exited(127), wasStarting: true)
            }
            pid = failed
        }
        service.phase = .starting(pid: pid)
        log("\(definition.name): started (pid \(pid))")
        loop.onExit(of: pid) { [unowned self, unowned service] in ended(service, status: $0) }
        // A task is never ready: it is done when it ends.
        if !definition.isTask { awaitReadiness(service) }
    }

    // MARK: readiness and health

    private func awaitReadiness(_ service: Service) {
        let definition = service.definition
        if definition.readiness == .started { return markReady(service) }
        let deadline = MonotonicClock.now() + definition.readinessTimeout.nanoseconds
        service.timers.append(loop.schedule(after: definition.readinessTimeout) { [unowned self, unowned service] in
            guard case .starting = service.phase else { return }
            log("\(service.name): not ready within \(definition.readinessTimeout.shortDescription); stopping it")
            service.reason = "not ready in time"
            signalGroup(service, definition.stopSignal)
            scheduleKill(service)
        })
        switch definition.readiness {
        case .started, .notify:
            break
        case .tcp(let port):
            pollReadiness(service, until: deadline) { [unowned self] done in
                probeTCP(port: port, loop: loop, timeout: .seconds(1), done: done)
            }
        case .command(let probe):
            pollReadiness(service, until: deadline) { [unowned self] done in
                loop.runHelper(self.probe(service, probe, timeout: .seconds(5))) { done($0.succeeded) }
            }
        }
    }

    /// Tries `attempt` every 100 ms while the service is starting.
    private func pollReadiness(_ service: Service, until deadline: UInt64, attempt: @escaping (@escaping (Bool) -> Void) -> Void) {
        let pid = service.pid
        attempt { [unowned self, weak service] ok in
            guard let service, case .starting(let current) = service.phase, current == pid else { return }
            if ok { return markReady(service) }
            guard MonotonicClock.now() < deadline else { return }
            service.pollTimer = loop.schedule(after: .milliseconds(100)) { [unowned self] in
                pollReadiness(service, until: deadline, attempt: attempt)
            }
        }
    }

    private func notified(_ service: Service, _ fields: [String: String]) {
        if let status = fields["STATUS"] { log("\(service.name): \(status)") }
        if fields["READY"] == "1", case .starting = service.phase { markReady(service) }
    }

    private func markReady(_ service: Service) {
        guard case .starting(let pid) = service.phase else { return }
        service.phase = .ready(pid: pid)
        log("\(service.name): ready")
        scheduleHealthCheck(service)
        startWhatCan()
    }

    private func scheduleHealthCheck(_ service: Service) {
        guard let check = service.definition.health, case .ready(let pid) = service.phase else { return }
        service.healthTimer = loop.schedule(after: check.interval) { [unowned self, weak service] in
            guard let service, case .ready(pid) = service.phase else { return }
            loop.runHelper(probe(service, check.command, timeout: check.timeout)) { [unowned self, weak service] result in
                guard let service, case .ready(pid) = service.phase else { return }
                if result.succeeded {
                    if !service.healthy { log("\(service.name): healthy again") }
                    service.healthy = true
                    service.healthFailures = 0
                } else {
                    service.healthFailures += 1
                    if service.healthFailures >= check.retries && service.healthy {
                        service.healthy = false
                        log("\(service.name): unhealthy (\(service.healthFailures) failed checks)\(check.restart ? "; restarting it" : "")")
                        if check.restart { return restart(service) }
                    }
                }
                scheduleHealthCheck(service)
            }
        }
    }

    // MARK: exits, restarts, failure

    /// Its process is gone: every way out of a running phase is here.
    /// `wasStarting`: no process ever ran (the spawn failed) while starting.
    private func ended(_ service: Service, status: ChildStatus, wasStarting: Bool = false) {
        if case .stopped = status { return }
        if case .continued = status { return }
        let previous = service.phase
        cancelTimers(service)
        service.endedAt = MonotonicClock.now()
        if service.definition.isTask, !stopping {
            // Read on until what it left running closes them.
            for stream in service.streams {
                stream.onClose = { [weak service, unowned stream] in service?.leftoverStreams.removeAll { $0 === stream } }
            }
            service.leftoverStreams += service.streams
        } else {
            // Its last lines are in the pipe now: relay them before berth
            // may exit (a daemon it left behind keeps its own end open).
            service.streams.forEach { $0.closeStream() }
        }
        service.streams.removeAll()
        service.notify = nil
        service.lastExit = status
        let ranFor = MonotonicClock.now() &- service.startedAt
        if case .stopping(_, let then) = previous {
            service.phase = .stopped
            log("\(service.name): stopped (\(status.summary))")
            if then == .restart && !stopping {
                service.restarts += 1
                service.phase = .waiting
                spawn(service)
            }
            stopWhatCan()
            return
        }
        if stopping { service.phase = .stopped; log("\(service.name): \(status.summary)"); return stopWhatCan() }
        if service.definition.isTask, let pid = previous.pid { return taskEnded(service, pid: pid, status: status) }
        let startingBefore: Bool
        if case .starting = previous { startingBefore = true } else { startingBefore = wasStarting }
        let definition = service.definition
        let failedRun = status != .exited(0)
        log("\(service.name): \(status.summary)")
        let restart = switch definition.restart {
        case .always: true
        case .onFailure: failedRun
        case .never: false
        }
        let stable = ranFor >= definition.stableAfter.nanoseconds
        if stable { service.backoffAttempt = 0 }
        if failedRun || !stable {
            let now = MonotonicClock.now()
            service.crashTimes = service.crashTimes.filter { now &- $0 < definition.crashWindow.nanoseconds } + [now]
            if restart && service.crashTimes.count >= definition.crashLimit {
                return fail(service, "\(service.crashTimes.count) failed runs within \(definition.crashWindow.shortDescription)")
            }
        }
        guard restart else {
            if failedRun && startingBefore { return fail(service, "exited before it was ready (\(status.summary))") }
            service.phase = failedRun ? .failed : .stopped
            service.reason = status.summary
            if failedRun && definition.critical { onFatal?("critical service \(service.name) failed: \(status.summary)") }
            return startWhatCan()
        }
        let delay = backoff(for: service)
        service.phase = .backingOff
        log("\(service.name): restarting in \(delay.milliseconds) ms")
        service.timers.append(loop.schedule(after: delay) { [unowned self, unowned service] in
            guard case .backingOff = service.phase, !stopping else { return }
            service.restarts += 1
            spawn(service)
        })
        startWhatCan()
    }

    /// A task ran: done or failed, never restarted; what it left running is
    /// found (its session, its marker), counted, and kept or ended.
    private func taskEnded(_ service: Service, pid: pid_t, status: ChildStatus) {
        let definition = service.definition
        let took = Duration.nanoseconds(Int64((service.endedAt ?? service.startedAt) &- service.startedAt))
        let left = LeftProcess.find(session: pid, marker: "\(Self.taskMarker)=\(definition.name)", uid: runsAs(service))
        var line = "\(definition.name): \(status == .exited(0) ? "done" : "failed: \(status.summary)") after \(took.shortDescription)"
        if !left.isEmpty {
            let count = left.count == 1 ? "1 process" : "\(left.count) processes"
            switch definition.leftovers {
            case .keep:
                service.leftProcesses = left
                line += "; \(count) left running (kept; BERTH_HOOK_LEFTOVERS=kill ends them)"
            case .kill:
                line += "; \(count) left running: SIGTERM"
                left.forEach { $0.signal(SIGTERM) }
                _ = loop.schedule(after: definition.stopGrace) { left.forEach { $0.signal(SIGKILL) } }
            }
        }
        log(line)
        if status == .exited(0) {
            service.phase = .done
            service.reason = nil
        } else {
            service.phase = .failed
            service.reason = status.summary
            if definition.critical { onFatal?("\(definition.name) failed: \(status.summary)") }
        }
        if service.runAgain {
            service.runAgain = false
            return rerun(service)
        }
        startWhatCan()
    }

    /// base × 2^attempt, capped, then ±20 % jitter so services that fail
    /// together do not retry in lockstep.
    func backoff(for service: Service) -> Duration {
        let definition = service.definition
        let base = Double(definition.backoffBase.milliseconds)
        let cap = Double(definition.backoffCap.milliseconds)
        let raw = min(cap, base * Double(1 << min(service.backoffAttempt, 20)))
        service.backoffAttempt += 1
        return .milliseconds(Int(raw * Double.random(in: 0.8...1.2)))
    }

    /// Only ever called with no process left (waiting, or just exited).
    private func fail(_ service: Service, _ reason: String) {
        cancelTimers(service)
        service.phase = .failed
        service.reason = reason
        log("\(service.name): failed: \(reason)")
        if service.definition.critical {
            onFatal?("critical service \(service.name) failed: \(reason)")
        }
        startWhatCan()
    }

    private func cancelTimers(_ service: Service) {
        service.timers.forEach(loop.cancel)
        service.timers.removeAll()
        if let timer = service.pollTimer { loop.cancel(timer) }
        if let timer = service.healthTimer { loop.cancel(timer) }
        service.pollTimer = nil
        service.healthTimer = nil
    }

    // MARK: control

    /// Stops it (stop signal, grace, SIGKILL) and starts it again.
    public func restart(_ service: Service) {
        guard !stopping else { return }
        if service.pid != nil {
            stop(service, then: .restart)
        } else {
            cancelTimers(service)
            service.crashTimes.removeAll()
            service.backoffAttempt = 0
            service.phase = .waiting
            startWhatCan()
        }
    }

    /// A task again, whatever it remembers (`berth hooks run NAME`).
    public func rerun(_ task: Service) {
        task.forcedRun = true
        restart(task)
    }

    /// A restart already asked for still happens after a plain stop.
    public func stop(_ service: Service, then: AfterStop = .stay) {
        cancelTimers(service)
        guard let pid = service.pid else {
            service.phase = .stopped
            return
        }
        var next = then
        if case .stopping(_, .restart) = service.phase { next = .restart }
        service.phase = .stopping(pid: pid, then: next)
        signalGroup(service, service.definition.stopSignal)
        scheduleKill(service)
    }

    private func scheduleKill(_ service: Service) {
        guard let pid = service.pid else { return }
        service.timers.append(loop.schedule(after: service.definition.stopGrace) { [unowned self, weak service] in
            guard let service, service.pid == pid else { return }
            log("\(service.name): still running \(service.definition.stopGrace.milliseconds) ms after \(Signals.name(of: service.definition.stopSignal)); SIGKILL")
            signalGroup(service, SIGKILL)
        })
    }

    private func signalGroup(_ service: Service, _ signal: Int32) {
        guard let pid = service.pid else { return }
        // The whole group: a shell wrapper's children go with it.
        if kill(-pid, signal) != 0 { kill(pid, signal) }
    }

    /// Answers `berth status` and friends on a UNIX socket until stopAll.
    /// `allowedUsers`: the workspace user(s), who see every service's status
    /// and control their own (see `mayControl`).
    public func serveControl(at path: String, group: gid_t?, allowedUsers: Set<uid_t>) throws(Errno) {
        workspaceUsers = allowedUsers
        control = try ControlServer(path: path, group: group, allowedUsers: allowedUsers, loop: loop) { [unowned self] in
            answer($0, from: $1)
        }
    }

    /// Every service down, dependents before what they depend on; `done`
    /// once none is left running.
    public func stopAll(done: @escaping () -> Void) {
        stage = .stopping(done: done)
        control = nil
        for service in services where service.pid == nil {
            cancelTimers(service)
            if service.state != .failed { service.phase = .stopped }
        }
        stopWhatCan()
    }

    private func stopWhatCan() {
        guard stopping else { return }
        let running = services.filter { $0.pid != nil }
        if running.isEmpty {
            let dropped = standardOutput.finish() + standardError.finish()
            if dropped > 0 { log("\(dropped) log lines were dropped in all: berth's output was not read fast enough") }
            guard case .stopping(let done) = stage else { return }
            stage = .stopping(done: nil)
            done?()
            return
        }
        let stages = Self.stopStages(services.map(\.definition))
        guard let stage = running.map({ stages[$0.name] ?? .first }).min() else { return }
        for service in running where service.state != .stopping && stages[service.name] == stage {
            let dependentsUp = services.contains { $0.pid != nil && $0.definition.dependsOn.contains(service.name) }
            if !dependentsUp { stop(service) }
        }
    }

    /// Each service's stop stage, raised to the latest of its dependents'
    /// (it must outlive them): a later stage's service that depends on an
    /// earlier stage's would otherwise wait for it while it waits for its
    /// dependent.
    static func stopStages(_ definitions: [ServiceDefinition]) -> [String: ServiceDefinition.StopStage] {
        var stages = Dictionary(definitions.map { ($0.name, $0.stopStage) }) { first, _ in first }
        // A chain is at most as long as the list; no cycles (checked at start).
        for _ in definitions {
            var changed = false
            for definition in definitions {
                for dependency in definition.dependsOn {
                    if let own = stages[definition.name], let theirs = stages[dependency], theirs < own {
                        stages[dependency] = own
                        changed = true
                    }
                }
            }
            if !changed { break }
        }
        return stages
    }

    // MARK: helpers

    /// Dependencies first, otherwise in the given order; unknown names and
    /// cycles are errors.
    public static func order(_ definitions: [ServiceDefinition]) throws(SetupError) -> [ServiceDefinition] {
        do {
            return try dependencyOrder(definitions, name: \.name, dependencies: { $0.dependsOn + $0.after })
        } catch {
            switch error {
            case .duplicateName(let name): throw SetupError(description: "two services are named \(name)")
            case .unknownDependency(let service, let dependency):
                throw SetupError(description: "service \(service): depends_on '\(dependency)', which is not a service")
            case .cycle(let names): throw SetupError(description: "services depend on each other in a cycle: \(names.joined(separator: ", "))")
            }
        }
    }
}
