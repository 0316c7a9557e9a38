import BerthCore
import BerthPlugins
import Glibc

/// Everything berth's own face reads from its command line and
/// environment, read once at start (tini's `parse_env`): the init's
/// options, where berth's files live, who the workspace user is, and —
/// when a plugin, a drop-in or a service may have work — the environment
/// itself, which the plugins read and the children inherit. Provisioning,
/// the services and the command's identity are all planned from this one
/// value; a value that does not parse is an error naming its variable.
struct Configuration {
    /// The init's options (command line over BERTH_* variables).
    var initSettings: NativeSettings
    /// BERTH_USER: the workspace user, whose files provisioning writes and
    /// whom the command runs as when berth is root.
    var workspaceUserName: String
    /// BERTH_COMMAND_USER=root: the command keeps root.
    var commandKeepsRoot: Bool
    /// BERTH_RUN_DIR: provision.json, token-refresh.json, the control and
    /// notify sockets, the supervisor's credentials.
    var runDirectory: String
    /// BERTH_PLUGINS_DIR: the image's drop-in steps.
    var pluginsDirectory: String
    /// BERTH_SERVICES_DIR: the image's service files.
    var servicesDirectory: String
    /// BERTH_STEP_TIMEOUT.
    var stepTimeout: Duration
    /// BERTH_SHUTDOWN_TIMEOUT: the services' whole shutdown.
    var shutdownTimeout: Duration
    /// BERTH_STRICT: a failed step stops berth before the command.
    var strict: Bool
    /// BERTH_DISABLE: steps not to run (checked against the steps).
    var disabledSteps: [String]
    /// NOTIFY_SOCKET is set: berth tells an outer manager it is ready.
    var hasServiceManager: Bool
    /// The environment as berth received it; nil on the usual plain start
    /// (no plugin, drop-in or service has work), which then builds none.
    var environment: Environment?

    /// berth's own variables (the init's options are NativeCommand's).
    static let variables = [
        PluginVariable("BERTH_USER", .option, default: "dev8", "the workspace user; home, uid and groups from `/etc/passwd` and `/etc/group`"),
        PluginVariable("BERTH_COMMAND_USER", .option, default: "workspace", """
            `workspace`: as root, the command runs as `BERTH_USER` when it exists; `root`: it keeps root
            """),
        PluginVariable("BERTH_DISABLE", .option, "comma-separated steps not to run (an unknown name is an error, status 2)"),
        PluginVariable("BERTH_STRICT", .option, default: "0", "1: a failed step stops berth (status 1) before the command starts"),
        PluginVariable("BERTH_STEP_TIMEOUT", .option, default: "60s", "how long a step may take before it is failed"),
        PluginVariable("BERTH_RUN_DIR", .option, default: "/run/berth", """
            where `provision.json`, `token-refresh.json`, the control socket, services' notify sockets and the supervisor's credentials go
            """),
        PluginVariable("BERTH_PLUGINS_DIR", .option, default: "/etc/berth/plugins.d", """
            the image's executables, run after the built-in steps in name order, each a step `plugins.d/<file>`
            """),
        PluginVariable("BERTH_SERVICES_DIR", .option, default: "/etc/berth/services.d", "the image's service files (`*.toml`)"),
        PluginVariable("BERTH_SHUTDOWN_TIMEOUT", .option, default: "8s", "how long the services' whole shutdown may take"),
    ]

    /// `variable` reads one variable (nil when unset): getenv on a start,
    /// a dictionary in tests.
    /// `readsEnvironment`: build the environment whatever the start probe
    /// says (`berth provision`, which is asked to provision).
    /// `probe`: how plugins look at variables on the start check (this
    /// process's environment by default; `variable` when nil).
    static func read(_ options: NativeOptions, variable: @escaping (String) -> String?,
                     inherited: () -> Environment = Environment.inherited, readsEnvironment: Bool = false,
                     probe: StartProbe? = nil) throws(UsageError) -> Configuration {
        let initSettings = try NativeFace.resolve(options, variable: variable)
        func value(_ name: String) -> String? { variable(name).flatMap { $0.isEmpty ? nil : $0 } }
        func setting<T>(_ read: () throws(SettingError) -> T) throws(UsageError) -> T {
            do {
                return try read()
            } catch {
                throw UsageError(message: error.message)
            }
        }
        // Only the variables berth's start needs are read here, one at a
        // time, without building an environment (the first one cost a
        // plain start ~180,000 instructions, more than tini's whole start);
        // the plugins' settings come from the environment built below.
        func duration(_ name: String, default fallback: Duration) throws(UsageError) -> Duration {
            guard let text = value(name) else { return fallback }
            return try setting { () throws(SettingError) in try Settings.duration(text, variable: name, in: .milliseconds(1)...(.seconds(86_400))) }
        }
        var configuration = Configuration(
            initSettings: initSettings,
            workspaceUserName: value("BERTH_USER") ?? "dev8",
            commandKeepsRoot: false,
            runDirectory: value("BERTH_RUN_DIR") ?? "/run/berth",
            pluginsDirectory: value("BERTH_PLUGINS_DIR") ?? "/etc/berth/plugins.d",
            servicesDirectory: value("BERTH_SERVICES_DIR") ?? "/etc/berth/services.d",
            stepTimeout: try duration("BERTH_STEP_TIMEOUT", default: .seconds(60)),
            // Inside docker stop's default 10 s, with room to spare.
            shutdownTimeout: try duration("BERTH_SHUTDOWN_TIMEOUT", default: .seconds(8)),
            strict: try value("BERTH_STRICT").map { text throws(UsageError) in
                try setting { () throws(SettingError) in try Settings.boolean(text, variable: "BERTH_STRICT") }
            } ?? false,
            disabledSteps: commaSeparated(value("BERTH_DISABLE")),
            hasServiceManager: variable("NOTIFY_SOCKET") != nil,
            environment: nil)
        switch value("BERTH_COMMAND_USER") ?? "workspace" {
        case "workspace": break
        case "root": configuration.commandKeepsRoot = true
        case let other: throw UsageError(message: "BERTH_COMMAND_USER='\(other)': expected workspace (the default: BERTH_USER) or root")
        }
        if readsEnvironment || configuration.mayHaveWork(probe ?? StartProbe(value: value, isSet: { name in value(name) != nil || value(name + "_FILE") != nil })) {
            configuration.environment = inherited()
        }
        return configuration
    }

    /// Whether a plugin, a drop-in or a service could have anything to do,
    /// decided from a few variables, PATH and two directories: the usual
    /// `berth -- CMD` then never builds its environment.
    func mayHaveWork(_ probe: StartProbe) -> Bool {
        var pluginHasWork = false
        forEachPlugin { plugin in pluginHasWork = pluginHasWork || plugin.mayHaveWork(probe) }
        return pluginHasWork || !disabledSteps.isEmpty
            || directoryHasEntry(pluginsDirectory)
            || directoryHasEntry(servicesDirectory, suffix: ".toml")
    }

    /// What every child of berth inherits, services and command alike: the
    /// environment without the provisioning steps' secrets, the platform's
    /// credentials (values and `_FILE` paths: the workspace supervisor gets
    /// them as files of its own) and NOTIFY_SOCKET, which is berth's alone.
    /// nil when nothing is to be taken out and nothing was read: the
    /// children then get berth's environment as it is.
    /// `isSet` asks for NAME or NAME_FILE (`environmentIsSet` on a start).
    func inheritedByChildren(isSet: (String) -> Bool,
                             inherited: () -> Environment = Environment.inherited) -> Environment? {
        var removed: [String] = []
        for name in PlatformCredential.names where isSet(name) { removed.append(name) }
        if hasServiceManager { removed.append("NOTIFY_SOCKET") }
        if environment != nil {
            removed += registry.flatMap { $0.variables.filter(\.isSecret).map(\.name) }
        }
        guard environment != nil || !removed.isEmpty else { return nil }
        var children = environment ?? inherited()
        children.remove(removed)
        children.remove(PlatformCredential.names.map { $0 + "_FILE" })
        return children
    }
}
