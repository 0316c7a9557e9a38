import BerthCore
import Glibc

/// Everything that differs between berth's own behaviour and the tini and
/// dumb-init faces, as plain data. The life cycle in `InitProcess` reads it;
/// it never asks which face it is wearing.
public struct InitPolicy {
    public enum SignalTarget { case child, processGroup }

    public enum Subreaper {
        /// Register whenever berth is not PID 1 (berth's default).
        case whenNotPID1
        /// Register only when asked (tini's -s / TINI_SUBREAPER); warn otherwise.
        case onRequest(Bool)
        case never
    }

    public enum AfterMainExit {
        /// Exit at once; the kernel kills what is left when PID 1 goes (tini).
        case exitNow
        /// Send one signal to the signal target, then exit (dumb-init).
        case signalTargetThenExit(Int32)
        /// SIGTERM to every remaining process, a grace period, SIGKILL, and
        /// exit only when nothing is left (berth).
        case terminateEveryone(grace: Duration)
    }

    public var command: [String]
    public var isolation: SpawnRequest.Isolation = .newProcessGroup
    public var signalTarget: SignalTarget = .child
    /// Source signal to forwarded signal; 0 means do not forward.
    public var rewrites: [Int32: Int32] = [:]
    public var exitCodesMappedToZero: Set<Int32> = []
    public var parentDeathSignal: Int32 = 0
    public var subreaper: Subreaper = .whenNotPID1
    public var afterMainExit: AfterMainExit = .terminateEveryone(grace: .seconds(5))
    /// Give up the controlling terminal so a child in a new session can take
    /// it; the kernel's hand-off SIGHUP/SIGCONT are then not forwarded.
    public var detachTerminal = false
    /// After forwarding SIGTSTP/SIGTTIN/SIGTTOU, stop berth too (dumb-init).
    public var suspendAfterJobControlSignal = false
    /// SIGTTIN/SIGTTOU sent to berth are not forwarded (tini).
    public var dropTerminalStopSignals = false
    /// When the child is stopped from its terminal, stop berth as well so the
    /// outer shell sees the job stop; on SIGCONT hand the terminal back.
    public var followChildJobControl = true
    /// Work that must finish on the loop before the child starts
    /// (provisioning). A terminating signal meanwhile cancels it.
    public var beforeChild: (any Preparation)?
    /// Services started after the preparation and before the child, which
    /// waits until the required ones are ready; stopped after it exits.
    public var supervision: (any Supervision)?
    /// Tells an outer service manager how berth is doing (sd_notify
    /// states: READY=1, STATUS=..., STOPPING=1); nil: nobody to tell.
    public var tellManager: ((String) -> Void)?
    /// The child's environment; nil: berth's own.
    public var childEnvironment: Environment?
    /// Run the child as this user (the workspace user, when berth supervises).
    public var childIdentity: SpawnRequest.Identity?
    public var execFailureStatus: Int32 = 0
    public var childNote: String?

    /// Work that must finish on the loop before the child starts
    /// (provisioning plans implement it).
    public protocol Preparation: AnyObject {
        /// Calls back with true to start the child, false to exit (status 1).
        func start(_ loop: EventLoop, _ proceed: @escaping (Bool) -> Void)
        /// A terminating signal came first: stop at once.
        func cancel()
    }

    /// Services started after the preparation and before the child
    /// (the services plan implements it).
    public protocol Supervision: AnyObject {
        /// Starts the services; calls `ready` once the child may start and
        /// `fatal` when a critical service failed for good.
        func start(_ loop: EventLoop, ready: @escaping () -> Void, fatal: @escaping (String) -> Void)
        /// Stops every service (reverse dependency order), then calls back.
        func stopAll(then done: @escaping () -> Void)
        /// Bound on the whole shutdown; then everything left gets SIGKILL.
        var shutdownTimeout: Duration { get }
    }

    public init(command: [String]) {
        self.command = command
    }

    func exitCode(for status: ChildStatus) -> Int32 {
        let code = status.shellExitCode & 0xff
        return exitCodesMappedToZero.contains(code) ? 0 : code
    }
}
