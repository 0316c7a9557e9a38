import BerthCore
import Glibc

/// One service berth keeps running: what to start, as whom, when it counts
/// as ready and healthy, and what to do when it stops. Plain data, from a
/// built-in definition or a file in services.d.
public struct ServiceDefinition: Sendable {
    public enum Readiness: Equatable, Sendable {
        /// Ready as soon as it started.
        case started
        /// Ready when 127.0.0.1:port accepts a connection.
        case tcp(port: Int)
        /// Ready when this command exits 0 (tried every 200 ms).
        case command([String])
        /// Ready when the service sends READY=1 to its NOTIFY_SOCKET.
        case notify
    }

    /// At shutdown services stop stage by stage: none of a later stage is
    /// asked to stop while one of an earlier stage runs (and dependents
    /// still stop before what they depend on). The user's services go
    /// first, so the workspace supervisor's last backup sees their last
    /// writes; sshd goes last, so an operator can still log in to see why
    /// a shutdown is slow.
    public enum StopStage: Int, Comparable, Sendable {
        case first
        case afterServices
        case last

        public static func < (left: StopStage, right: StopStage) -> Bool { left.rawValue < right.rawValue }
    }

    public enum RestartPolicy: String, Sendable, CaseIterable {
        case always
        case onFailure = "on-failure"
        case never
    }

    public struct HealthCheck: Equatable, Sendable {
        public var command: [String]
        public var interval: Duration = .seconds(30)
        public var timeout: Duration = .seconds(5)
        /// Failures in a row before the service is unhealthy.
        public var retries = 3
        /// Restart it when unhealthy (else only report).
        public var restart = true
    }

    public var name: String
    public var command: [String]
    /// Run as this user (with its groups, HOME, USER, LOGNAME, SHELL);
    /// nil: as berth.
    public var user: String?
    /// With `user` only: this primary group instead of the user's groups.
    public var group: String?
    /// The workspace user may restart, stop, start and read the lines of
    /// this service although it runs as someone else (root, say). Without
    /// it only root and the service's own user may.
    public var controlByWorkspaceUser = false
    /// Added to (and overriding) the environment services inherit, which
    /// holds no provisioning secrets.
    public var environment: [String: String] = [:]
    /// Secret variables this service asks for by name (opt-in).
    public var passSecrets: [String] = []
    public var workingDirectory: String?
    /// Kept across the change to `user` as ambient capabilities (bit N =
    /// capability N), when berth holds them; built-ins only.
    public var ambientCapabilities: UInt64 = 0
    /// Nothing the service execs gains privileges (setuid, file capabilities).
    public var noNewPrivileges = false
    public var dependsOn: [String] = []
    public var readiness: Readiness = .started
    public var readinessTimeout: Duration = .seconds(60)
    public var health: HealthCheck?
    public var restart: RestartPolicy = .always
    public var stopSignal: Int32 = SIGTERM
    public var stopGrace: Duration = .seconds(5)
    public var stopStage: StopStage = .first
    /// Failing for good stops the container.
    public var critical = false
    /// The container's command waits until this one is ready.
    public var required = true
    /// Backoff between restarts: base doubling up to cap, with jitter.
    public var backoffBase: Duration = .milliseconds(500)
    public var backoffCap: Duration = .seconds(30)
    /// A run at least this long resets the backoff and the crash count.
    public var stableAfter: Duration = .seconds(10)
    /// This many failed runs within `crashWindow`: failed for good.
    public var crashLimit = 5
    public var crashWindow: Duration = .seconds(60)
    /// A set-up task (a devcontainer.json hook, the dotfiles): runs once
    /// to completion in a session of its own, is never restarted, is done
    /// when its process exits 0 and failed otherwise; nobody waits for it
    /// unless they name it. What it leaves running is handled by `leftovers`.
    public var isTask = false
    /// Starts only once these are settled (ready, done, failed or stopped),
    /// whatever the outcome: order, not need (`dependsOn` is need).
    public var after: [String] = []
    public enum LeftoverPolicy: String, Sendable {
        /// Kept running (a dev server a hook started), counted in `berth
        /// status`, drained at shutdown with everything else.
        case keep
        /// Sent SIGTERM, then SIGKILL after the stop grace.
        case kill
    }
    public var leftovers: LeftoverPolicy = .keep
    /// A task that does not run at start, only when asked (the control
    /// request `run NAME`): postAttach, at each SSH session.
    public var runsWhenAsked = false
    /// A task's rule for running again, as `berth status` says it
    /// ("once per workspace", "every start").
    public var rerunRule: String?
    /// Values replaced by `***` in its relayed and kept output (the
    /// provisioned secrets a hook could print).
    public var maskedValues: [String] = []
    /// Why it must not start (a built-in whose settings could not be read):
    /// it is never started, shows as failed with this reason, and a
    /// `berth start` or `restart` fails it again with the same one.
    public var refusal: String?

    public init(name: String, command: [String]) {
        self.name = name
        self.command = command
    }
}
