import BerthCore
import Glibc

/// What the init has to say about its life. Each face (berth, tini,
/// dumb-init) words it its own way; every method defaults to silence.
public protocol InitDiagnostics {
    /// Whether `receivedChildSignal` says anything (the reaping path skips
    /// the call otherwise).
    var reportsChildSignals: Bool { get }
    /// Whether `reaped(pid:status:isMain: false)` says anything: otherwise
    /// an orphan's exit costs the init no call at all (the loop counts it).
    var reportsReapedOrphans: Bool { get }
    func cannotReapOrphans()
    func registeredSubreaper()
    func subreaperFailed(_ error: Int32)
    func detachedTerminal(ok: Bool, error: Int32, sessionLeader: Bool)
    func spawned(pid: pid_t, command: [String])
    func spawnFailed(command: String, error: SpawnError)
    func received(_ signal: ReceivedSignal)
    func receivedChildSignal()
    func ignoredHandOff(_ signal: Int32)
    func translated(_ signal: Int32, to: Int32)
    func forwarded(_ signal: Int32, target: pid_t, delivered: Bool)
    func notForwarded(_ signal: Int32, reason: NotForwardedReason)
    func suspendingSelf()
    func childStopped(by signal: Int32)
    func reaped(pid: pid_t, status: ChildStatus, isMain: Bool)
    func mainExited(status: ChildStatus, exitCode: Int32)
    func terminatingOthers(grace: Duration)
    func killingOthers()
    func stoppedBeforeChild(by signal: Int32)
    func goodbye(exitCode: Int32, orphansReaped: Int)
}

extension InitDiagnostics {
    public var reportsChildSignals: Bool { false }
    public var reportsReapedOrphans: Bool { true }
    public func cannotReapOrphans() {}
    public func registeredSubreaper() {}
    public func subreaperFailed(_ error: Int32) {}
    public func detachedTerminal(ok: Bool, error: Int32, sessionLeader: Bool) {}
    public func spawned(pid: pid_t, command: [String]) {}
    public func spawnFailed(command: String, error: SpawnError) {}
    public func received(_ signal: ReceivedSignal) {}
    public func receivedChildSignal() {}
    public func ignoredHandOff(_ signal: Int32) {}
    public func translated(_ signal: Int32, to: Int32) {}
    public func forwarded(_ signal: Int32, target: pid_t, delivered: Bool) {}
    public func notForwarded(_ signal: Int32, reason: NotForwardedReason) {}
    public func suspendingSelf() {}
    public func childStopped(by signal: Int32) {}
    public func reaped(pid: pid_t, status: ChildStatus, isMain: Bool) {}
    public func mainExited(status: ChildStatus, exitCode: Int32) {}
    public func terminatingOthers(grace: Duration) {}
    public func killingOthers() {}
    public func stoppedBeforeChild(by signal: Int32) {}
    public func goodbye(exitCode: Int32, orphansReaped: Int) {}
}

public enum NotForwardedReason: CustomStringConvertible {
    case rewrittenToZero, raisedByKernel, childGone

    public var description: String {
        switch self {
        case .rewrittenToZero: return "rewritten to 0"
        case .raisedByKernel: return "raised by the kernel, not sent by a user"
        case .childGone: return "the child has exited"
        }
    }
}

func errorText(_ error: Int32) -> String {
    String(cString: strerror(error))
}
