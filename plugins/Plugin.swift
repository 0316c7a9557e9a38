import BerthCore
import BerthProvisioning
import BerthSupervision
import Glibc

/// A plugin: one folder under plugins/ that declares everything about its
/// feature — the variables it reads (and which are secrets), its
/// provisioning step, its built-in service with readiness and enable rule.
/// berth's wiring goes through the registry (Registry.swift) and nothing
/// else, and docs/variables.md is generated from the same declarations.
/// A plugin is a struct without stored properties, so passing one as
/// `any Plugin` allocates nothing.
public protocol Plugin: Sendable {
    /// The folder's name; also its step's (BERTH_DISABLE, `--only`, the
    /// report) when it has one.
    var name: String { get }
    /// One line for docs/variables.md.
    var summary: String { get }
    /// Every variable the feature reads, in the order the docs list them.
    var variables: [PluginVariable] { get }
    /// Asked at every start before anything is built: false means neither
    /// its step nor its service has anything to do. It reads variables
    /// with `probe` and asks whether a program is installed, nothing more,
    /// and it names its variables in code rather than going through
    /// `variables`: the first array of a new element type costs the Swift
    /// runtime ~18,000 instructions of metadata, and every `berth -- CMD`
    /// pays what this costs (PluginRegistryTests sets each variable that
    /// asks for a feature and checks this answers yes).
    func mayHaveWork(_ probe: StartProbe) -> Bool
    /// Its provisioning step, new for each run; nil when it has none.
    func makeStep() -> ProvisioningStep?
    /// Its built-in service, or nil when it has none or it is not wanted
    /// here (switched off, not installed: say why through `context.notice`).
    func service(_ context: ServiceContext) throws(SettingError) -> ServiceDefinition?
    /// Its set-up tasks (`ServiceDefinition.isTask`), in order; names in
    /// their `after` that are not planned here (no sshd) are dropped.
    func tasks(_ context: ServiceContext) throws(SettingError) -> [ServiceDefinition]
}

extension Plugin {
    public func makeStep() -> ProvisioningStep? { nil }
    public func service(_ context: ServiceContext) throws(SettingError) -> ServiceDefinition? { nil }
    public func tasks(_ context: ServiceContext) throws(SettingError) -> [ServiceDefinition] { [] }

    /// The variables whose being set asks for this plugin's step (a
    /// service switch asks for the service only).
    public var requestingVariables: [String] {
        variables.filter { $0.role == .request || $0.role == .secret }.map(\.name)
    }
}

/// One variable a plugin reads.
public struct PluginVariable: Sendable {
    public enum Role: Sendable {
        /// Setting it asks for the feature: berth runs the step even if it
        /// then skips, so the reason shows in the report.
        case request
        /// A secret input (NAME or NAME_FILE) that asks for the feature;
        /// the command and the services never inherit NAME.
        case secret
        /// A secret that tunes the feature without asking for it (the
        /// platform's credentials for the workspace supervisor).
        case credential
        /// Switches a built-in service on or off (any value goes through
        /// the full check, so a typo is an error, not silence).
        case serviceSwitch
        /// Tunes the feature; does not ask for it.
        case option
    }

    public let name: String
    public let role: Role
    /// What the docs show as its default ("" when none).
    public let defaultValue: String
    public let meaning: String

    public init(_ name: String, _ role: Role, default defaultValue: String = "", _ meaning: String) {
        self.name = name
        self.role = role
        self.defaultValue = defaultValue
        self.meaning = meaning
    }

    public var asksForFeature: Bool { role == .request || role == .secret || role == .serviceSwitch }
    public var isSecret: Bool { role == .secret || role == .credential }
}

/// What `mayHaveWork` may look at: variables read one at a time (getenv on
/// a plain start, which builds no environment) and installed programs.
public struct StartProbe {
    /// A variable's non-empty value, or nil.
    public let value: (String) -> String?
    /// NAME or NAME_FILE has a non-empty value.
    public let isSet: (String) -> Bool
    public let runningAsRoot: Bool

    public init(value: @escaping (String) -> String?, isSet: @escaping (String) -> Bool, runningAsRoot: Bool = getuid() == 0) {
        self.value = value
        self.isSet = isSet
        self.runningAsRoot = runningAsRoot
    }

    /// This process's environment, read with getenv: nothing is built,
    /// and NAME_FILE is put together on the stack.
    public static var process: StartProbe {
        StartProbe(value: { name in environmentValue(name).flatMap { $0.isEmpty ? nil : $0 } }, isSet: environmentIsSet)
    }

    /// The probe of a settings value (tests, `berth provision`).
    public init(_ settings: Settings, runningAsRoot: Bool = getuid() == 0) {
        self.init(value: settings.value, isSet: settings.isSet, runningAsRoot: runningAsRoot)
    }

    /// `program` is executable in a directory of the container's PATH.
    public func isInstalled(_ program: String) -> Bool {
        isExecutableOnPath(program, searchPath: value("PATH") ?? defaultSearchPath)
    }
}

/// What a plugin's built-in service is planned from: the settings read at
/// start, who berth and the workspace user are, where berth's files live.
public final class ServiceContext {
    public let settings: Settings
    public let runningAsRoot: Bool
    /// BERTH_USER, checked at start.
    public let workspaceUserName: String
    /// BERTH_RUN_DIR.
    public let runDirectory: String
    /// Lines said at start (when berth supervises anything) about services
    /// that are wanted but cannot run, each naming what switches it off.
    public private(set) var notices: [String] = []
    /// BERTH_SHUTDOWN_TIMEOUT: every service is down within it.
    public let shutdownTimeout: Duration
    /// BERTH_STRICT: a failed set-up task stops the container too.
    public let strict: Bool
    /// The values of every secret a plugin declares that is set here
    /// (NAME or NAME_FILE's content): masked in set-up tasks' output.
    public var secretValues: [String] {
        var values: [String] = []
        for plugin in registry {
            for variable in plugin.variables where variable.isSecret {
                if let secret = try? settings.secret(variable.name) { values.append(String(decoding: secret.bytes, as: UTF8.self)) }
            }
        }
        return values
    }
    private var lookedUp: UserAccount??

    public init(settings: Settings, workspaceUserName: String, runDirectory: String, shutdownTimeout: Duration = .seconds(8),
                strict: Bool = false, runningAsRoot: Bool = getuid() == 0) {
        self.settings = settings
        self.strict = strict
        self.workspaceUserName = workspaceUserName
        self.runDirectory = runDirectory
        self.shutdownTimeout = shutdownTimeout
        self.runningAsRoot = runningAsRoot
    }

    /// The workspace user's account, looked up once; nil when it does not exist.
    public var workspaceUser: UserAccount? {
        if let lookedUp { return lookedUp }
        let found = try? UserAccount.lookup(workspaceUserName)
        lookedUp = .some(found)
        return found
    }

    public func notice(_ line: String) { notices.append(line) }

    /// "NAME is not installed …; SWITCH=0 says it is not wanted".
    public func noticeNotInstalled(_ program: String, switchedBy variable: String) {
        notice("\(program) is not installed (not on PATH): not started; \(variable)=0 says it is not wanted")
    }
}
