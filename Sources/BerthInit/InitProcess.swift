import BerthCore
import CBerth
import Glibc

/// The init's life, in the order it happens: configureSignals →
/// adoptOrphans → detachTerminal → reap what was inherited → the
/// preparation (provisioning) → startServicesThenChild → spawnChild → the
/// loop (forwardSignal, reaping, mainChildChanged) → stopServices →
/// finishAfterMainExit → killEveryoneElse → the exit code.
public final class InitProcess {
    let policy: InitPolicy
    let say: InitDiagnostics
    let loop: EventLoop

    private var childPID: pid_t = 0
    private var childAlive = false
    private var childStoppedByTerminal = false
    private var gaveTerminalToChild = false
    private var handOffSignalsToIgnore: SignalSet = []
    /// policy.rewrites as a table indexed by signal number (-1: unchanged),
    /// so forwarding does no hashing.
    private let rewriteTable: [Int32]
    private var exitCode: Int32 = 1
    private var shuttingDown = false
    private var killRounds = 0
    private var orphansReaped = 0
    private var preparing = false
    private var servicesStarted = false
    private var servicesStopping = false
    private var criticalFailure = false
    private var releasedStartupMemory = false

    public init(policy: InitPolicy, diagnostics: InitDiagnostics) throws {
        self.policy = policy
        self.say = diagnostics
        self.loop = try EventLoop()
        StandardStreams.route(through: loop)
        var table = [Int32](repeating: -1, count: 65)
        for (from, to) in policy.rewrites where from >= 1 && from <= 64 { table[Int(from)] = to }
        self.rewriteTable = table
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
        loop.onUnclaimedExit = { [unowned self] pid, status in
            orphansReaped += 1
            say.reaped(pid: pid, status: status, isMain: false)
        }
        loop.onNoChildrenLeft = { [unowned self] in
            if shuttingDown { loop.stop() }
        }
        // Zombies berth inherited (say, from the program that exec'd it).
        loop.reapChildren()
        if let preparation = policy.beforeChild {
            preparing = true
            policy.tellManager?("STATUS=provisioning")
            preparation.start(loop) { [unowned self] proceed in
                guard preparing else { return }
                preparing = false
                if !proceed {
                    exitCode = 1
                    loop.stop()
                } else {
                    startServicesThenChild()
                }
            }
        } else if policy.supervision != nil {
            startServicesThenChild()
        } else {
            guard spawnChild() else { return exitCode }
        }
        loop.run()
        say.goodbye(exitCode: exitCode, orphansReaped: orphansReaped)
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

    /// Services first; the child once the required ones are ready. Without
    /// a command berth just keeps the services running until stopped.
    private func startServicesThenChild() {
        guard let supervision = policy.supervision else {
            if !spawnChild() { loop.stop() }
            return
        }
        servicesStarted = true
        policy.tellManager?("STATUS=starting services")
        supervision.start(loop, { [unowned self] in
            guard !servicesStopping else { return }
            guard !policy.command.isEmpty else {
                policy.tellManager?("READY=1\nSTATUS=services running")
                releaseStartupMemorySoon()
                return
            }
            if !spawnChild() { stopServices() }
        }, { [unowned self] message in
            StandardError.write("berth: \(message): stopping the container\n")
            criticalFailure = true
            if childAlive { sendToTarget(SIGTERM) } else { stopServices() }
        })
    }

    /// Every service down (bounded by the shutdown timeout), then the usual
    /// end: everyone else gets SIGTERM, a grace, SIGKILL.
    private func stopServices() {
        if servicesStopping { return }  // a second SIGTERM changes nothing
        guard let supervision = policy.supervision, servicesStarted else {
            return finishAfterMainExit()
        }
        servicesStopping = true
        policy.tellManager?("STOPPING=1\nSTATUS=stopping services")
        loop.schedule(after: supervision.shutdownTimeout) { [unowned self] in
            StandardError.write("berth: shutdown took longer than \(supervision.shutdownTimeout.components.seconds) s: SIGKILL to everything left\n")
            ProcessSweep.signalEveryoneElse(SIGKILL)
            if criticalFailure { exitCode = 1 }
            loop.stop()
        }
        supervision.stopAll { [unowned self] in
            if criticalFailure { exitCode = 1 }
            finishAfterMainExit()
        }
    }

    private func spawnChild() -> Bool {
        var request = SpawnRequest(arguments: policy.command)
        request.isolation = policy.isolation
        switch policy.isolation {
        case .newProcessGroup: request.takeTerminal = Spawner.holdsTerminalForeground()
        case .newSession: request.takeTerminal = isatty(STDIN_FILENO) == 1
        case .sameGroup: request.takeTerminal = false
        }
        gaveTerminalToChild = request.takeTerminal && policy.isolation == .newProcessGroup
        loop.reportsStops = gaveTerminalToChild && policy.followChildJobControl
        request.environment = policy.childEnvironment
        request.identity = policy.childIdentity
        request.execFailureStatus = policy.execFailureStatus
        request.childNote = policy.childNote
        // berth keeps no directory busy; the child starts in the caller's.
        // Move first, so the child can never see berth still there.
        let callerDirectory = berth_open_current_directory()
        request.workingDirectoryFD = callerDirectory
        _ = chdir("/")
        defer { if callerDirectory >= 0 { close(callerDirectory) } }

        do {
            childPID = try Spawner.spawn(request)
            say.spawned(pid: childPID, command: policy.command)
        } catch {
            say.spawnFailed(command: policy.command[0], error: error)
            guard let pid = error.pid else {
                exitCode = 1
                return false
            }
            // The child exits with 127/126 (or the face's status); its
            // status flows through the normal path below.
            childPID = pid
        }
        childAlive = true
        loop.onExit(of: childPID) { [unowned self] in mainChildChanged($0) }
        policy.tellManager?("READY=1\nSTATUS=running \(policy.command[0])")
        if servicesStarted || policy.beforeChild != nil { releaseStartupMemorySoon() }
        return true
    }

    /// When berth supervises or provisioned (a workspace's long-lived PID 1,
    /// perhaps refreshing a token every few minutes), start-up is over once
    /// the command runs (or the services are ready). A second later berth lets go of the code
    /// pages only start-up used (parsing, provisioning, the Swift runtime's
    /// first-use paths): a long-lived supervisor then holds about what its
    /// loop needs. A plain init skips it: the timer would cost it the
    /// signal-only fast path, and the pages faulted back in would cost its
    /// first forwarded signals (measured: forwarding p99 1.07x -> 1.67x tini).
    private func releaseStartupMemorySoon() {
        guard !releasedStartupMemory else { return }
        releasedStartupMemory = true
        CodePages.releaseSoon(on: loop)
    }

    // MARK: the loop's work

    private func forwardSignal(_ signal: ReceivedSignal) {
        let number = signal.number
        say.received(signal)
        if preparing {
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
        if number == SIGCONT && childStoppedByTerminal && childAlive {
            resumeStoppedChild()
        }
        guard childAlive else {
            if servicesStarted && [SIGTERM, SIGINT, SIGHUP, SIGQUIT].contains(number) && signal.wasSentByProcess {
                // No command (or not yet): the signal stops the container.
                if childPID == 0 { exitCode = policy.command.isEmpty ? 0 : 128 + number }
                stopServices()
                return
            }
            say.notForwarded(number, reason: .childGone)
            return
        }
        sendToTarget(number)
        if policy.suspendAfterJobControlSignal && Signals.jobControl.contains(number) {
            say.suspendingSelf()
            kill(getpid(), SIGSTOP)
        }
    }

    private func sendToTarget(_ original: Int32) {
        var number = original
        let rewritten = original >= 1 && original <= 64 ? rewriteTable[Int(original)] : -1
        if rewritten >= 0 {
            say.translated(original, to: rewritten)
            number = rewritten
        }
        guard number != 0 else {
            say.notForwarded(original, reason: .rewrittenToZero)
            return
        }
        let target = policy.signalTarget == .processGroup ? -childPID : childPID
        // A reaped child's pid may already belong to someone else; its group
        // lives on while members remain, so only the group is still a target.
        let delivered = (childAlive || target < 0) && kill(target, number) == 0
        say.forwarded(number, target: target, delivered: delivered)
    }

    private func mainChildChanged(_ status: ChildStatus) {
        switch status {
        case .stopped(let signal):
            followStoppedChild(signal)
        case .continued:
            childStoppedByTerminal = false
        case .exited, .signaled:
            childAlive = false
            exitCode = policy.exitCode(for: status)
            say.reaped(pid: childPID, status: status, isMain: true)
            say.mainExited(status: status, exitCode: exitCode)
            policy.tellManager?("STOPPING=1")
            if servicesStarted { stopServices() } else { finishAfterMainExit() }
        }
    }

    /// Ctrl-Z stopped the child. As PID 1 berth cannot be stopped, so the
    /// child would hang forever: continue it. Otherwise stop berth too, so
    /// the shell that started berth sees its job stop and can `fg` it.
    private func followStoppedChild(_ signal: Int32) {
        guard policy.followChildJobControl, Signals.jobControl.contains(signal) else { return }
        say.childStopped(by: signal)
        if getpid() == 1 {
            kill(-childPID, SIGCONT)
            return
        }
        guard gaveTerminalToChild else { return }
        childStoppedByTerminal = true
        kill(getpid(), SIGSTOP)
    }

    /// The shell continued berth: give the terminal back to the child's group
    /// before it wakes, or its first read would stop it again.
    private func resumeStoppedChild() {
        childStoppedByTerminal = false
        if gaveTerminalToChild && isatty(STDIN_FILENO) == 1 {
            tcsetpgrp(STDIN_FILENO, childPID)
        }
        if policy.signalTarget == .child {
            // The child's group may hold its own children, stopped with it.
            kill(-childPID, SIGCONT)
        }
    }

    /// No child yet: a terminating signal ends the preparation at once. Its
    /// helpers are berth's own tools, so they get SIGKILL, not a grace.
    private func stopPreparing(on signal: ReceivedSignal) {
        guard [SIGTERM, SIGINT, SIGHUP, SIGQUIT].contains(signal.number), signal.wasSentByProcess else { return }
        preparing = false
        policy.beforeChild?.cancel()
        ProcessSweep.signalEveryoneElse(SIGKILL)
        say.stoppedBeforeChild(by: signal.number)
        exitCode = 128 + signal.number
        loop.stop()
    }

    // MARK: the end

    private func finishAfterMainExit() {
        switch policy.afterMainExit {
        case .exitNow:
            loop.stop()
        case .signalTargetThenExit(let signal):
            sendToTarget(signal)
            loop.stop()
        case .terminateEveryone(let grace):
            shuttingDown = true
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
        if killRounds == 0 { say.killingOthers() }
        killRounds += 1
        ProcessSweep.signalEveryoneElse(SIGKILL)
        guard loop.reapChildren() else {
            loop.stop()
            return
        }
        if killRounds < 50 {
            loop.schedule(after: .milliseconds(100)) { [unowned self] in killEveryoneElse() }
        } else {
            loop.stop()
        }
    }
}
