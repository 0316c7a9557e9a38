import BerthProvisioning

/// sudo: passwordless sudo for the workspace user, only when asked.
public struct SudoPlugin: Plugin {
    public let name = "sudo"
    public let summary = "Passwordless sudo for the workspace user, only when asked for."
    public let variables = [
        PluginVariable("BERTH_SUDO", .request, default: "off", """
            on: passwordless sudo for the workspace user in `/etc/sudoers.d/berth` (0440, checked with `visudo -c` first); off: that \
            file is removed. The user has no password, so there is no password sudo: without `BERTH_SUDO` the user has no sudo rights
            """),
    ]
    public init() {}
    public func makeStep() -> ProvisioningStep? { SudoStep() }
}
