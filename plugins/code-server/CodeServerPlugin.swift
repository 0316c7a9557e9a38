import BerthCore
import BerthProvisioning
import BerthSupervision

/// code-server: its config.yaml (the step), then code-server as the
/// workspace user, ready when its port accepts.
public struct CodeServerPlugin: Plugin {
    public var name: String { "code-server" }
    public var summary: String { "code-server's `config.yaml` (bind address, auth, an argon2id-hashed password), then code-server as a service." }
    public var variables: [PluginVariable] {
        [
            PluginVariable("CODE_SERVER_BIND", .request, default: "0.0.0.0:8080", "`bind-addr` in `~/.config/code-server/config.yaml`; its port is the one readiness waits for"),
            PluginVariable("CODE_SERVER_AUTH", .request, default: "password", "`password` or `none`"),
            PluginVariable("CODE_SERVER_PASSWORD", .secret, default: "random", """
                stored only as an argon2id `hashed-password`; without it a random password is made once and kept in \
                `~/.config/code-server/password` (0600), whose path berth prints
                """),
            PluginVariable("CODE_SERVER_ENABLED", .serviceSwitch, default: "1", "0 turns the code-server service off"),
            PluginVariable("WORKSPACE_DIR", .option, default: "/workspace", "the folder code-server opens"),
        ]
    }

    public init() {}

    /// Installed is reason enough: its config must exist before it starts.
    public func mayHaveWork(_ probe: StartProbe) -> Bool {
        probe.isSet("CODE_SERVER_BIND") || probe.isSet("CODE_SERVER_AUTH") || probe.isSet("CODE_SERVER_PASSWORD") || probe.value("CODE_SERVER_ENABLED") != nil
            || probe.isInstalled("code-server")
    }

    public func makeStep() -> ProvisioningStep? { CodeServerStep(requesting: requestingVariables) }

    /// As the workspace user when berth is root (not started when that
    /// user does not exist), as berth's own user otherwise.
    public func service(_ context: ServiceContext) throws(SettingError) -> ServiceDefinition? {
        let settings = context.settings
        guard try settings.boolean("CODE_SERVER_ENABLED", default: true) else { return nil }
        guard let program = findExecutable("code-server", settings: settings) else {
            context.noticeNotInstalled("code-server", switchedBy: "CODE_SERVER_ENABLED")
            return nil
        }
        var user: UserAccount?
        if context.runningAsRoot {
            guard let found = context.workspaceUser else { return nil }
            user = found
        }
        let home = user?.home ?? settings.value("HOME", default: "/")
        var definition = ServiceDefinition(name: "code-server", command: [
            program, "--config", home + "/.config/code-server/config.yaml", settings.value("WORKSPACE_DIR", default: "/workspace"),
        ])
        definition.user = user?.name
        definition.readiness = .tcp(port: try Self.bind(settings).port)
        return definition
    }

    /// CODE_SERVER_BIND as HOST and PORT, for the config file and the
    /// readiness probe alike.
    static func bind(_ settings: Settings) throws(SettingError) -> (text: String, port: Int) {
        try settings.hostAndPort("CODE_SERVER_BIND", default: "0.0.0.0:8080")
    }
}
