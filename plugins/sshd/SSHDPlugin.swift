import BerthCore
import BerthProvisioning
import BerthSupervision
import Glibc

/// sshd: per-container host keys and a hardened drop-in (the step), then
/// sshd itself as a service, ready when its port accepts.
public struct SSHDPlugin: Plugin {
    public var name: String { "sshd" }
    public var summary: String { "Per-container host keys, a hardened `sshd_config.d/berth.conf` checked with `sshd -t`, and sshd as a service." }
    public var variables: [PluginVariable] {
        [
            PluginVariable("SSH_PUBLIC_KEY", .request, "without a key nobody could log in (password logins are off): no step, no service"),
            PluginVariable("SSH_PORT", .option, default: "2222", "the port sshd listens on (its `-p`, which wins over any `Port` in sshd_config), and the one readiness waits for"),
            PluginVariable("SSH_HOST_KEY_TYPES", .option, default: "ed25519,ecdsa", """
                host key types sshd offers, in order (`ed25519`, `ecdsa`, `rsa`). RSA is opt-in: making its key took 0.25-1.2 s here \
                (median 0.6 s), most of a container's time to first login
                """),
            PluginVariable("SSHD_ENABLED", .serviceSwitch, default: "1", "0 turns the sshd service off"),
        ]
    }
    static let program = "/usr/sbin/sshd"

    public init() {}

    public func mayHaveWork(_ probe: StartProbe) -> Bool {
        probe.isSet("SSH_PUBLIC_KEY") || probe.value("SSHD_ENABLED") != nil
    }

    public func makeStep() -> ProvisioningStep? { SSHDStep() }

    /// The step's conditions: without them sshd could not start (no root,
    /// not installed) or nobody could log in (no key).
    public func service(_ context: ServiceContext) throws(SettingError) -> ServiceDefinition? {
        let settings = context.settings
        guard try settings.boolean("SSHD_ENABLED", default: true), context.runningAsRoot,
              access(Self.program, X_OK) == 0, settings.isSet("SSH_PUBLIC_KEY") else { return nil }
        // The port on sshd's command line: -p wins over every Port line in
        // sshd_config and its drop-ins, so the image's own sshd_config can
        // keep the original images' `Port 2222` and SSH_PORT still decides.
        let port = try Self.port(settings)
        var sshd = ServiceDefinition(name: "sshd", command: [Self.program, "-D", "-e", "-p", "\(port)"])
        sshd.readiness = .tcp(port: port)
        sshd.readinessTimeout = .seconds(30)
        sshd.stopStage = .last
        return sshd
    }

    /// SSH_PORT, for sshd's -p and the readiness probe alike; the step checks it too,
    /// so a bad one fails the step naming it.
    static func port(_ settings: Settings) throws(SettingError) -> Int {
        try settings.port("SSH_PORT", default: 2222)
    }
}
