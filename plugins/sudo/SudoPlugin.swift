import BerthProvisioning

/// sudo: passwordless sudo for the workspace user, only when asked.
public struct SudoPlugin: Plugin {
    public var name: String { "sudo" }
    public var summary: String { "Passwordless sudo for the workspace user, or only to install packages, only when asked for." }
    public var variables: [PluginVariable] {
        [
            PluginVariable("BERTH_SUDO", .request, default: "off", """
                on: passwordless sudo for the workspace user in `/etc/sudoers.d/berth` (0440, checked with `visudo -c` first); \
                `packages`: that file lets the user run one command as root, `sudo berth install-packages NAME...`, which takes only \
                Debian package names and runs `apt-get install` with a fixed environment (the archive's packages and their \
                maintainer scripts are trusted: see provisioning.md); off: that file is removed. The user has no password, so there \
                is no password sudo: without `BERTH_SUDO` the user has no sudo rights
                """),
        ]
    }
    public init() {}

    public func mayHaveWork(_ probe: StartProbe) -> Bool {
        probe.isSet("BERTH_SUDO")
    }
    public func makeStep() -> ProvisioningStep? { SudoStep() }
}
