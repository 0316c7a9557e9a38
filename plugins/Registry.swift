/// Every built-in plugin, in the order their steps run and their services
/// start. Adding a plugin: its folder under plugins/ and one line here.
/// A function rather than an array: a plain start asks every plugin
/// whether it has work, and the first `[any Plugin]` would cost the Swift
/// runtime ~28,000 instructions of metadata (callgrind) on every start.
public func forEachPlugin(_ visit: (any Plugin) throws -> Void) rethrows {
    try visit(SSHKeysPlugin())
    try visit(SSHDPlugin())
    try visit(SudoPlugin())
    try visit(GitHubAuthPlugin())
    // After github-auth by its place here, not by a dependency: a start
    // token GitHub rejected must not stop the refreshes that replace it.
    try visit(TokenRefreshPlugin())
    try visit(AICLIPlugin())
    try visit(CodeServerPlugin())
    try visit(WorkspaceSupervisorPlugin())
    // Last, the set-up tasks: they run once everything above is provisioned
    // and sshd is settled, the dotfiles before devcontainer.json's hooks.
    try visit(DotfilesPlugin())
    try visit(DevcontainerPlugin())
}

/// The plugins as a list, for the paths that build steps, services and docs.
public var registry: [any Plugin] {
    var plugins: [any Plugin] = []
    forEachPlugin { plugins.append($0) }
    return plugins
}
