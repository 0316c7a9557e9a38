import CBerth
import Glibc

/// A decoded `waitpid` status.
public enum ChildStatus: Equatable, Sendable {
    case exited(Int32)
    case signaled(Int32, coreDumped: Bool)
    case stopped(Int32)
    case continued

    public init(waitStatus status: Int32) {
        if berth_wifexited(status) != 0 {
            self = .exited(berth_wexitstatus(status))
        } else if berth_wifsignaled(status) != 0 {
            self = .signaled(berth_wtermsig(status), coreDumped: berth_wcoredump(status) != 0)
        } else if berth_wifstopped(status) != 0 {
            self = .stopped(berth_wstopsig(status))
        } else {
            self = .continued
        }
    }

    /// True once the process is gone for good (and has been reaped).
    public var isTermination: Bool {
        switch self {
        case .exited, .signaled: return true
        case .stopped, .continued: return false
        }
    }

    /// The shell's convention: the exit code, or 128+N for death by signal N.
    public var shellExitCode: Int32 {
        switch self {
        case .exited(let code): return code
        case .signaled(let signal, _): return (128 + signal) & 0xff
        case .stopped, .continued: return -1
        }
    }

    /// How berth's lines say it: `exited with status 3`, `killed by
    /// SIGTERM (core dumped)`, `stopped by SIGTSTP`, `continued`. The one
    /// description of a status, for the init, the services and the steps.
    public var summary: String {
        switch self {
        case .exited(let code): "exited with status \(code)"
        case .signaled(let signal, let core): "killed by \(Signals.name(of: signal))" + (core ? " (core dumped)" : "")
        case .stopped(let signal): "stopped by \(Signals.name(of: signal))"
        case .continued: "continued"
        }
    }
}
