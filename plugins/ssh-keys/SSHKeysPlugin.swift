import BerthProvisioning

/// ssh-keys: the workspace user's authorized keys and private key.
public struct SSHKeysPlugin: Plugin {
    public var name: String { "ssh-keys" }
    public var summary: String { "The workspace user's `~/.ssh/authorized_keys` and private key." }
    public var variables: [PluginVariable] {
        [
            PluginVariable("SSH_PUBLIC_KEY", .request, """
                one or more OpenSSH public keys, one a line (or `SSH_PUBLIC_KEY_FILE`); each is checked (type and key blob) and they go to \
                `~/.ssh/authorized_keys` (0600, `~/.ssh` 0700, the user's) between `# BEGIN berth` / `# END berth` lines: keys the user adds \
                outside them stay, a restart writes the same file
                """),
            PluginVariable("SSH_PRIVATE_KEY", .secret, """
                an OpenSSH private key (`-----BEGIN OPENSSH PRIVATE KEY-----`, encrypted or not) → `~/.ssh/id_<type>` (0600) and \
                `id_<type>.pub` derived from it
                """),
        ]
    }
    public init() {}

    public func mayHaveWork(_ probe: StartProbe) -> Bool {
        probe.isSet("SSH_PUBLIC_KEY") || probe.isSet("SSH_PRIVATE_KEY")
    }
    public func makeStep() -> ProvisioningStep? { SSHKeysStep() }
}
