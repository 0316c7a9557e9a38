import BerthProvisioning

/// ssh-keys: the workspace user's authorized keys and private key.
public struct SSHKeysPlugin: Plugin {
    public let name = "ssh-keys"
    public let summary = "The workspace user's `~/.ssh/authorized_keys` and private key."
    public let variables = [
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
    public init() {}
    public func makeStep() -> ProvisioningStep? { SSHKeysStep() }
}
