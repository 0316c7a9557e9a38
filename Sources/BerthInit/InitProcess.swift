import BerthCore
import CBerth
import Glibc

/// The init's life, in the order it happens: configureSignals →
/// adoptOrphans → detachTerminal → reap what was inherited → the
/// preparation (provisioning) → startServicesThenChild → spawnChild → the
/// loop (forwardSignal, reaping, mainChildChanged) → stopServices →
/// finishAfterMainExit → killEveryoneElse → the exit code. The phases
/// (`Phase`) follow the same order: settingUp → preparing →
/// startingServices → running(child) or runningServices →
/// stoppingServices → sweeping(round) → exiting.
public final class InitProcess {
    let policy: InitPolicy
    let say: InitDiagnostics
    let loop: EventLoop

    /// The child berth spawned, while it lives.
    struct Child {
        let pid: pid_t
        /// It got the terminal's foreground in its own group, so Ctrl-Z
        /// stops it from the terminal and berth follows.
        let holdsTerminal: Bool
        /// Stopped from its terminal, berth with it; SIGCONT resumes both.
        var stoppedByTerminal = false
    }

    /// Where berth is in its life. Each case carries what that phase needs;
    /// only the event handlers under "transitions" assign it.
    enum Phase {
        /// Signals set up, nothing started yet.
        case settingUp
        /// Provisioning runs; a terminating signal ends berth at once.
        case preparing
        /// Services start; the child waits until the required ones are ready.
        case startingServices
        /// No command: the services run until a signal stops them.
        case runningServices
        /// The child runs (beside the services, when berth supervises).
        case running(Child)
        /// The child is gone (`formerChild`, nil if none was spawned); the
        /// services stop, bounded by the shutdown timeout.
        case stoppingServices(formerChild: pid_t?)
        /// Everyone left got SIGTERM; `round` SIGKILL rounds after the
        /// grace so far.
        case sweeping(round: Int, formerChild: pid_t?)
        /// The loop is stopping; nothing more to do.
        case exiting
    }

    private var phase = Phase.settingUp
    private var handOffSignalsToIgnore: SignalSet = []
    /// policy.rewrites as a table indexed by signal number (-1: unchanged),
    /// so forwarding does no hashing.
    /// DST by SRC (1...64; -1: as it is), or empty when nothing is
    /// rewritten: the usual start then builds no [Int32], whose first
    /// storage costs the runtime ~8,600 instructions of metadata.
    private let rewriteTable: [Int32]
    private var exitCode: Int32 = 1
    /// A critical service failed for good: berth exits 1 once it is down.
    private var criticalFailure = false

    public init(policy: InitPolicy, diagnostics: InitDiagnostics) throws {
        self.policy = policy
        self.say = diagnostics
        self.loop = try EventLoop()
        StandardStreams.route(through: loop)
        if policy.rewrites.isEmpty {
            rewriteTable = []
        } else {
            var table = [Int32](repeating: -1, count: 65)
            for (from, to) in policy.rewrites where from >= 1 && from <= 64 { table[Int(from)] = to }
            rewriteTable = table
        }
    }

    /// Runs the command to completion and returns berth's exit status.
    public func run() -> Int32 {
        defer { StandardStreams.finish() }
        configureSignals()
        adoptOrphans()
        if policy.parentDeathSignal != 0 {
            _ = berth_set_parent_death_signal(policy.parentDeathSignal)
        }
        if policy.detachTerminal { detachTerminal() }
        loop.onSignal = { [unowned self] in forwardSignal($0) }
        if say.reportsChildSignals {
            loop.onChildSignal = { [unowned self] in say.receivedChildSignal() }
        }
        // An orphan storm is the init's hottest path: no call per orphan
        // unless the face says something about each (the loop counts them).
        if say.reportsReapedOrphans {
            loop.onUnclaimedExit = { [say] pid, status in say.reaped(pid: pid, status: status, isMain: false) }
        }
        loop.onNoChildrenLeft = { [unowned self] in
            if case .sweeping = phase { loop.stop() }
        }
        // Zombies berth inherited (say, from the program that exec'd it).
        loop.reapChildren()
        if let preparation = policy.beforeChild {
            startPreparation(preparation)
        } else if policy.supervision != nil {
            startServicesThenChild()
        } else {
            guard spawnChild() else { return exitCode }
        }
        loop.run()
        say.goodbye(exitCode: exitCode, orphansReaped: loop.unclaimedExits)
        return exitCode
    }

    // MARK: setup

    /// All signals are already blocked (before main, by a constructor) and
    /// arrive through the loop's signalfd. Only the terminal stop signals
    /// get a disposition, so a background berth is never stopped.
    private func configureSignals() {
        _ = berth_ignore_terminal_stop_signals()
    }

    private func adoptOrphans() {
        guard getpid() != 1 else { return }
        let wanted: Bool
        switch policy.subreaper {
        case .whenNotPID1: wanted = true
        case .onRequest(let requested): wanted = requested
        case .never: wanted = false
        }
        if wanted {
            if berth_set_child_subreaper() == 0 {
                say.registeredSubreaper()
            } else {
                say.subreaperFailed(errno)
            }
        }
        if berth_is_child_subreaper() != 1, case .onRequest = policy.subreaper {
            say.cannotReapOrphans()
        }
    }

    /// A session leader that gives up its terminal gets SIGHUP and SIGCONT
    /// from the kernel; those are not meant for the child (dumb-init#136).
    private func detachTerminal() {
        if berth_detach_controlling_tty(STDIN_FILENO) == 0 {
            let leader = getsid(0) == getpid()
            if leader { handOffSignalsToIgnore = [SIGHUP, SIGCONT] }
            say.detachedTerminal(ok: true, error: 0, sessionLeader: leader)
        } else {
            say.detachedTerminal(ok: false, error: errno, sessionLeader: false)
        }
    }

    private func startPreparation(_ preparation: any InitPolicy.Preparation) {
        phase = .preparing
        policy.tellManager?("STATUS=provisioning")
        preparation.start(loop) { [unowned self] proceed in preparationEnded(proceed: proceed) }
    }

    /// Services first; the child once the required ones are ready. Without
    /// a command berth just keeps the services running until stopped.
    private func startServicesThenChild() {
        guard let supervision = policy.supervision else {
            if !spawnChild() {
                phase = .exiting
                loop.stop()
            }
            return
        }
        phase = .startingServices
        policy.tellManager?("STATUS=starting services")
        supervision.start(loop, ready: { [unowned self] in servicesReady() }, fatal: { [unowned self] in servicesFailed($0) })
    }

    /// Moves into `.running`; false (exit code 1) when there is no child.
    private func spawnChild() -> Bool {
        var request = SpawnRequest(arguments: policy.command)
        request.isolation = policy.isolation
        switch policy.isolation {
        case .newProcessGroup: request.takeTerminal = Spawner.holdsTerminalForeground()
        case .newSession: request.takeTerminal = isatty(STDIN_FILENO) == 1
        case .sameGroup: request.takeTerminal = false
        }
        let holdsTerminal = request.takeTerminal && policy.isolation == .newProcessGroup
        // As PID 1 a stopped child is continued (berth cannot stop with
        // it), terminal or not: `kill -TSTP $$` in a script run by
        // `docker run` without -t would otherwise hang the container.
        loop.reportsStops = policy.followChildJobControl && (holdsTerminal || getpid() == 1)
        request.environment = policy.childEnvironment?.lines
        request.identity = policy.childIdentity
        request.execFailureStatus = policy.execFailureStatus
        request.childNote = policy.childNote
        // berth keeps no directory busy; the child starts in the caller's.
        // Move first, so the child can never see berth still there.
        let callerDirectory = berth_open_current_directory()
        request.workingDirectoryFD = callerDirectory
        _ = chdir("/")
        defer { if callerDirectory >= 0 { close(callerDirectory) } }

        let pid: pid_t
        do {
            pid = try Spawner.spawn(request)
            say.spawned(pid: pid, command: policy.command)
        } catch {
            say.spawnFailed(command: policy.command[0], error: error)
            guard let failed = error.pid else {
                exitCode = 1
                return false
            }
            // The child exits with 127/126 (or the face's status); its
            // status flows through the normal path below.
            pid = failed
        }
        phase = .running(Child(pid: pid, holdsTerminal: holdsTerminal))
        loop.onExit(of: pid) { [unowned self] in mainChildChanged($0) }
        policy.tellManager?("READY=1\nSTATUS=running \(policy.command[0])")
        if policy.supervision != nil || policy.beforeChild != nil { releaseStartupMemorySoon() }
        return true
    }

    /// When berth supervises or provisioned (a workspace's long-lived PID 1,
    /// perhaps refreshing a token every few minutes), start-up is over once
    /// the command runs (or the services are ready); each happens once. A
    /// second later berth lets go of the code
    /// pages only start-up used (parsing, provisioning, the Swift runtime's
    /// first-use paths): a long-lived supervisor then holds about what its
    /// loop needs. A plain init skips it: the timer would cost it the
    /// signal-only fast path, and the pages faulted back in would cost its
    /// first forwarded signals (measured: forwarding p99 1.07x -> 1.67x tini).
    private func releaseStartupMemorySoon() {
        CodePages.releaseSoon(on: loop)
    }

    // MARK: the loop's work

    private func forwardSignal(_ signal: ReceivedSignal) {
        let number = signal.number
        say.received(signal)
        if case .preparing = phase {
            stopPreparing(on: signal)
            return
        }
        if handOffSignalsToIgnore.remove(number) {
            say.ignoredHandOff(number)
            return
        }
        if signal.senderPID == getpid() && signal.wasSentByProcess {
            // Our own SIGPIPE and the like: not the child's business.
            return
        }
        if Signals.faults.contains(number) && !signal.wasSentByProcess {
            say.notForwarded(number, reason: .raisedByKernel)
            return
        }
        if policy.dropTerminalStopSignals && (number == SIGTTIN || number == SIGTTOU) {
            return
        }
        guard case .running(let child) = phase else {
            if servicesStarted && Self.terminating.contains(number) && signal.wasSentByProcess {
                return stopContainer(on: number)
            }
            say.notForwarded(number, reason: .childGone)
            return
        }
        if number == SIGCONT && child.stoppedByTerminal {
            resumeStoppedChild(child)
        }
        sendToTarget(number, child: child.pid, alive: true)
        if policy.suspendAfterJobControlSignal && Signals.jobControl.contains(number) {
            say.suspendingSelf()
            kill(getpid(), SIGSTOP)
        }
    }

    private static let terminating: [Int32] = [SIGTERM, SIGINT, SIGHUP, SIGQUIT]

    /// Services were started (and may be stopping, or stopped).
    private var servicesStarted: Bool {
        switch phase {
        case .startingServices, .runningServices, .stoppingServices: true
        case .running, .sweeping: policy.supervision != nil
        case .settingUp, .preparing, .exiting: false
        }
    }

    /// `alive`: false once the child was reaped; its number may belong to
    /// someone else by now.
    private func sendToTarget(_ original: Int32, child: pid_t, alive: Bool) {
        var number = original
        let rewritten = original >= 1 && original <= 64 && !rewriteTable.isEmpty ? rewriteTable[Int(original)] : -1
        if rewritten >= 0 {
            say.translated(original, to: rewritten)
            number = rewritten
        }
        guard number != 0 else {
            say.notForwarded(original, reason: .rewrittenToZero)
            return
        }
        let target = policy.signalTarget == .processGroup ? -child : child
        // A reaped child's pid may already belong to someone else; its group
        // lives on while members remain, so only the group is still a target.
        let delivered = (alive || target < 0) && kill(target, number) == 0
        say.forwarded(number, target: target, delivered: delivered)
    }

    // MARK: transitions: how each event moves `phase` on (the start-up
    // steps above enter the first phases, spawnChild `.running`)

    /// Ctrl-Z stopped the child. As PID 1 berth cannot be stopped, so the
    /// child would hang forever: continue it. Otherwise stop berth too, so
    /// the shell that started berth sees its job stop and can `fg` it.
    private func followStoppedChild(_ child: inout Child, _ signal: Int32) {
        guard policy.followChildJobControl, Signals.jobControl.contains(signal) else { return }
        say.childStopped(by: signal)
        if getpid() == 1 {
            kill(-child.pid, SIGCONT)
            return
        }
        guard child.holdsTerminal else { return }
        child.stoppedByTerminal = true
        kill(getpid(), SIGSTOP)
    }

    /// The shell continued berth: give the terminal back to the child's group
    /// before it wakes, or its first read would stop it again.
    private func resumeStoppedChild(_ child: Child) {
        var child = child
        child.stoppedByTerminal = false
        phase = .running(child)
        if child.holdsTerminal && isatty(STDIN_FILENO) == 1 {
            tcsetpgrp(STDIN_FILENO, child.pid)
        }
        if policy.signalTarget == .child {
            // The child's group may hold its own children, stopped with it.
            kill(-child.pid, SIGCONT)
        }
    }

    /// Provisioning is over: start what comes next, or exit (status 1).
    private func preparationEnded(proceed: Bool) {
        guard case .preparing = phase else { return }
        if proceed {
            startServicesThenChild()
        } else {
            exitCode = 1
            phase = .exiting
            loop.stop()
        }
    }

    /// No child yet: a terminating signal ends the preparation at once. Its
    /// helpers are berth's own tools, so they get SIGKILL, not a grace.
    private func stopPreparing(on signal: ReceivedSignal) {
        guard Self.terminating.contains(signal.number), signal.wasSentByProcess else { return }
        phase = .exiting
        policy.beforeChild?.cancel()
        ProcessSweep.signalEveryoneElse(SIGKILL)
        say.stoppedBeforeChild(by: signal.number)
        exitCode = 128 + signal.number
        loop.stop()
    }

    /// The required services are ready: the child may start.
    private func servicesReady() {
        guard case .startingServices = phase else { return }
        guard !policy.command.isEmpty else {
            phase = .runningServices
            policy.tellManager?("READY=1\nSTATUS=services running")
            releaseStartupMemorySoon()
            return
        }
        if !spawnChild() { stopServices(formerChild: nil) }
    }

    /// A critical service failed for good: the container stops, status 1.
    private func servicesFailed(_ message: String) {
        StandardError.write("berth: \(message): stopping the container\n")
        criticalFailure = true
        if case .running(let child) = phase {
            sendToTarget(SIGTERM, child: child.pid, alive: true)
        } else {
            stopServices(formerChild: nil)
        }
    }

    /// With services and no child running, a terminating signal stops the
    /// container (a later one only sets the status again).
    private func stopContainer(on number: Int32) {
        switch phase {
        case .startingServices, .runningServices, .stoppingServices(formerChild: nil), .sweeping(_, formerChild: nil):
            // No command (or not yet).
            exitCode = policy.command.isEmpty ? 0 : 128 + number
        default:
            break
        }
        stopServices(formerChild: nil)
    }

    private func mainChildChanged(_ status: ChildStatus) {
        guard case .running(var child) = phase else { return }
        switch status {
        case .stopped(let signal):
            followStoppedChild(&child, signal)
            phase = .running(child)
        case .continued:
            child.stoppedByTerminal = false
            phase = .running(child)
        case .exited, .signaled:
            exitCode = policy.exitCode(for: status)
            say.reaped(pid: child.pid, status: status, isMain: true)
            say.mainExited(status: status, exitCode: exitCode)
            policy.tellManager?("STOPPING=1")
            if servicesStarted { stopServices(formerChild: child.pid) } else { finishAfterMainExit(formerChild: child.pid) }
        }
    }

    /// Every service down (bounded by the shutdown timeout), then the usual
    /// end: everyone else gets SIGTERM, a grace, SIGKILL.
    private func stopServices(formerChild: pid_t?) {
        switch phase {
        case .stoppingServices, .sweeping, .exiting: return  // a second SIGTERM changes nothing
        default: break
        }
        guard let supervision = policy.supervision, servicesStarted else {
            return finishAfterMainExit(formerChild: formerChild)
        }
        phase = .stoppingServices(formerChild: formerChild)
        policy.tellManager?("STOPPING=1\nSTATUS=stopping services")
        loop.schedule(after: supervision.shutdownTimeout) { [unowned self] in
            StandardError.write("berth: shutdown took longer than \(supervision.shutdownTimeout.shortDescription): SIGKILL to everything left\n")
            ProcessSweep.signalEveryoneElse(SIGKILL)
            if criticalFailure { exitCode = 1 }
            loop.stop()
        }
        supervision.stopAll { [unowned self] in
            if criticalFailure { exitCode = 1 }
            finishAfterMainExit(formerChild: formerChild)
        }
    }

    /// The child is gone and so are the services: the face decides the rest.
    private func finishAfterMainExit(formerChild: pid_t?) {
        switch policy.afterMainExit {
        case .exitNow:
            phase = .exiting
            loop.stop()
        case .signalTargetThenExit(let signal):
            phase = .exiting
            sendToTarget(signal, child: formerChild ?? 0, alive: false)
            loop.stop()
        case .terminateEveryone(let grace):
            phase = .sweeping(round: 0, formerChild: formerChild)
            // No children left means no descendants left: anything still
            // running below berth would have been re-parented to it.
            guard loop.reapChildren() else {
                loop.stop()
                return
            }
            ProcessSweep.signalEveryoneElse(SIGTERM)
            say.terminatingOthers(grace: grace)
            loop.schedule(after: grace) { [unowned self] in killEveryoneElse() }
            // Those that already died may have been reaped by now.
            if !loop.reapChildren() { loop.stop() }
        }
    }

    /// Grace is over. Processes may still fork while dying, so repeat (bounded)
    /// until the loop sees no child left.
    private func killEveryoneElse() {
        guard case .sweeping(let round, let formerChild) = phase else { return }
        if round == 0 { say.killingOthers() }
        phase = .sweeping(round: round + 1, formerChild: formerChild)
        ProcessSweep.signalEveryoneElse(SIGKILL)
        guard loop.reapChildren() else {
            loop.stop()
            return
        }
        if round + 1 < 50 {
            loop.schedule(after: .milliseconds(100)) { [unowned self] in killEveryoneElse() }
        } else {
            loop.stop()
        }
    }
}
