import BerthCore
import Glibc

/// berth's own voice: `berth: ...` on stderr; 0 errors, 1 warnings
/// (default), 2 info, 3 debug.
struct NativeDiagnostics: InitDiagnostics {
    let verbosity: Int
    let warnOnReap: Bool

    var reportsReapedOrphans: Bool { verbosity >= (warnOnReap ? 1 : 3) }

    private func log(_ level: Int, _ text: @autoclosure () -> String) {
        if verbosity >= level { StandardError.write("berth: \(text())\n") }
    }

    func registeredSubreaper() {
        log(2, "not PID 1 (pid \(getpid())): registered as child subreaper so orphans are still reaped")
    }
    func subreaperFailed(_ error: Int32) {
        log(1, "not PID 1 and could not register as child subreaper (\(errorText(error))): orphans will not be reaped")
    }
    func spawned(pid: pid_t, command: [String]) { log(2, "started '\(command[0])' as pid \(pid)") }
    func spawnFailed(command: String, error: SpawnError) {
        log(0, error.step == .exec ? "cannot run '\(command)': \(error)" : "cannot start '\(command)': \(error)")
    }
    func received(_ signal: ReceivedSignal) {
        log(3, "received \(Signals.name(of: signal.number)) from pid \(signal.senderPID)")
    }
    func translated(_ signal: Int32, to: Int32) {
        log(3, "rewriting \(Signals.name(of: signal)) to \(to == 0 ? "nothing" : Signals.name(of: to))")
    }
    func forwarded(_ signal: Int32, target: pid_t, delivered: Bool) {
        let whom = target < 0 ? "process group \(-target)" : "pid \(target)"
        log(delivered ? 3 : 1, delivered ? "forwarded \(Signals.name(of: signal)) to \(whom)" : "could not forward \(Signals.name(of: signal)) to \(whom): \(errorText(errno))")
    }
    func notForwarded(_ signal: Int32, reason: NotForwardedReason) {
        log(3, "not forwarding \(Signals.name(of: signal)): \(reason)")
    }
    func childStopped(by signal: Int32) {
        log(2, getpid() == 1 ? "child stopped by \(Signals.name(of: signal)); PID 1 cannot be suspended, so it is continued" : "child stopped by \(Signals.name(of: signal)); suspending berth with it")
    }
    func reaped(pid: pid_t, status: ChildStatus, isMain: Bool) {
        guard !isMain else { return }
        log(warnOnReap ? 1 : 3, "reaped orphan pid \(pid) (\(status.summary))")
    }
    func mainExited(status: ChildStatus, exitCode: Int32) {
        log(2, "child \(status.summary); berth will exit with \(exitCode)")
    }
    func terminatingOthers(grace: Duration) {
        log(2, "sent SIGTERM to the remaining processes; SIGKILL in \(grace)")
    }
    func goodbye(exitCode: Int32, orphansReaped: Int) {
        log(2, "exiting with \(exitCode); reaped \(orphansReaped) orphan\(orphansReaped == 1 ? "" : "s") along the way")
    }
    func stoppedBeforeChild(by signal: Int32) {
        log(1, "\(Signals.name(of: signal)) before the command started: provisioning stopped, exiting")
    }
    func killingOthers() {
        log(1, "processes still running after the grace period: sending SIGKILL")
    }
}
