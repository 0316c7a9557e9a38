import BerthCore
import Glibc

/// One provisioning step (a plugin): ordered by its dependencies, skipped
/// with a reason when its inputs or tools are missing, and run on berth's
/// event loop without ever blocking it.
public protocol ProvisioningStep: AnyObject {
    /// Stable name: used in BERTH_DISABLE, `--only`, the log and provision.json.
    var name: String { get }
    /// Steps that must have succeeded (or been skipped) before this one runs.
    var dependencies: [String] { get }
    /// nil when the step has what it needs; otherwise why it is skipped.
    func skipReason(given inputs: StepInputs) -> String?
    /// Does the work and calls `done` exactly once, on the loop. Slow work
    /// (a tool, a request) goes through the loop, never a blocking call.
    func run(in context: StepContext, done: @escaping (StepOutcome) -> Void)
}

public enum StepOutcome: Equatable, Sendable {
    case ok(String?)
    case skipped(String)
    case failed(String)

    public var isFailure: Bool {
        if case .failed = self { return true }
        return false
    }
}

/// What a step is given: the settings, the workspace user, who berth runs as.
public struct StepInputs: Sendable {
    public let settings: Settings
    /// The workspace user, or why it could not be found.
    public let user: Result<UserAccount, SettingError>
    public let runningAsRoot: Bool

    public init(settings: Settings, user: Result<UserAccount, SettingError>, runningAsRoot: Bool = getuid() == 0) {
        self.settings = settings
        self.user = user
        self.runningAsRoot = runningAsRoot
    }
}

extension StepInputs {
    /// Why this process cannot write `subpath` of the workspace user's home
    /// (it must be root or that user), or nil.
    public func cannotWriteHome(_ subpath: String = "") -> String? {
        if case .success(let user) = user, !runningAsRoot, getuid() != user.uid {
            return "needs root or to run as \(user.name) to write \(user.home)\(subpath)"
        }
        return nil
    }
}

/// What a running step may use: its inputs and berth's loop.
public struct StepContext {
    public let loop: EventLoop
    public let inputs: StepInputs
    /// berth keeps running after provisioning (its start, not `berth
    /// provision`): periodic work may schedule itself on the loop.
    public let persistent: Bool
    /// The helpers the running step started: the provisioner kills them at
    /// the step's timeout and waits for them to be reaped before going on.
    public let helpers = HelperGroup()

    public init(loop: EventLoop, inputs: StepInputs, persistent: Bool = false) {
        self.loop = loop
        self.inputs = inputs
        self.persistent = persistent
    }

    /// Runs a helper for the step: as `EventLoop.runHelper`, and ended with
    /// the step if it times out.
    @discardableResult
    public func runHelper(_ command: HelperCommand, completion: @escaping (HelperResult) -> Void) -> HelperHandle {
        helpers.add(loop.runHelper(command, completion: completion))
    }

    public var settings: Settings { inputs.settings }
    public var user: Result<UserAccount, SettingError> { inputs.user }
}

public struct StepResult: Equatable, Sendable {
    public let name: String
    public let outcome: StepOutcome
    public let milliseconds: Int
    /// Seconds since the epoch when it started (or was skipped).
    public var startedAt: Int = 0

    public init(name: String, outcome: StepOutcome, milliseconds: Int, startedAt: Int = 0) {
        self.name = name
        self.outcome = outcome
        self.milliseconds = milliseconds
        self.startedAt = startedAt
    }
}
