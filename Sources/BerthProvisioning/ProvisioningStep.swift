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
    func skipReason(in context: StepContext) -> String?
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

/// What every step may use.
public struct StepContext {
    public let loop: EventLoop
    public let settings: Settings
    /// The workspace user, or why it could not be found.
    public let user: Result<UserAccount, SettingError>
    public let runningAsRoot: Bool

    public init(loop: EventLoop, settings: Settings, user: Result<UserAccount, SettingError>, runningAsRoot: Bool = getuid() == 0) {
        self.loop = loop
        self.settings = settings
        self.user = user
        self.runningAsRoot = runningAsRoot
    }
}

public struct StepResult: Equatable, Sendable {
    public let name: String
    public let outcome: StepOutcome
    public let milliseconds: Int
}
