import BerthProvisioning

/// github-auth: a GitHub token checked with the API, installed for gh and git.
public struct GitHubAuthPlugin: Plugin {
    public var name: String { "github-auth" }
    public var summary: String { "A GitHub token, checked with `GET /user`, installed for gh and git." }
    public var variables: [PluginVariable] {
        [
            PluginVariable("GH_TOKEN", .secret, "a GitHub token (wins over `GITHUB_TOKEN`, as in gh)"),
            PluginVariable("GITHUB_TOKEN", .secret, """
                a GitHub token, checked with `GET /user`, then written to gh's `~/.config/gh/hosts.yml` (0600) and, in `~/.gitconfig`, gh \
                as git's credential helper; without gh, git's `store` helper with a 0600 file
                """),
            PluginVariable("GITHUB_API_URL", .option, default: "https://api.github.com", "the REST API (GitHub Enterprise: `https://HOST/api/v3`)"),
            PluginVariable("GH_HOST", .option, default: "from `GITHUB_API_URL`", "the host gh and git know the account by (`github.com` for api.github.com)"),
            PluginVariable("GIT_USER_NAME", .option, default: "from the API", "git's `user.name`, unless `~/.gitconfig` already sets it"),
            PluginVariable("GIT_USER_EMAIL", .option, default: "from the API", """
                git's `user.email`; without it the profile's email or `ID+login@users.noreply.github.com`, unless `~/.gitconfig` sets one
                """),
            PluginVariable("BERTH_HTTP_TIMEOUT", .option, default: "10s", "how long one HTTP request may take (also token-refresh's)"),
        ]
    }
    public init() {}

    public func mayHaveWork(_ probe: StartProbe) -> Bool {
        probe.isSet("GH_TOKEN") || probe.isSet("GITHUB_TOKEN")
    }
    public func makeStep() -> ProvisioningStep? { GitHubAuthStep(login: GitHubLogin.process) }
}
