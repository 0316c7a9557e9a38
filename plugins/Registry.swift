/// Every built-in plugin, in the order their steps run and their services
/// start. Adding a plugin: its folder under plugins/ and one line here.
public let registry: [any Plugin] = [
    SSHKeysPlugin(),
    SSHDPlugin(),
    SudoPlugin(),
    GitHubAuthPlugin(),
    // After github-auth by its place here, not by a dependency: a start
    // token GitHub rejected must not stop the refreshes that replace it.
    TokenRefreshPlugin(),
    AICLIPlugin(),
    CodeServerPlugin(),
    WorkspaceSupervisorPlugin(),
]
