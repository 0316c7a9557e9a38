import BerthProvisioning

/// token-refresh: a fresh GitHub token from a file or an endpoint, every
/// few minutes, on berth's loop.
public struct TokenRefreshPlugin: Plugin {
    public var name: String { "token-refresh" }
    public var summary: String { "A rotating GitHub token re-read from its file or endpoint on berth's timer, installed when GitHub accepts it." }
    public var variables: [PluginVariable] {
        [
            PluginVariable("GITHUB_TOKEN_URL", .secret, """
                an endpoint answering a fresh token (`{"token": "..."}` or the token as text); wins over a `GH_TOKEN_FILE`/`GITHUB_TOKEN_FILE` \
                source, which are re-read at every refresh. It may carry a credential, so nothing berth starts inherits it
                """),
            PluginVariable("GITHUB_TOKEN_URL_AUTH_FILE", .option, "file holding the bearer credential for `GITHUB_TOKEN_URL` (re-read at each refresh)"),
            PluginVariable("BERTH_TOKEN_REFRESH_INTERVAL", .option, default: "5m", "time between refreshes (1s to 1d)"),
        ]
    }
    public init() {}

    /// Also a token given as a file: a file can be rotated in place.
    public func mayHaveWork(_ probe: StartProbe) -> Bool {
        probe.isSet("GITHUB_TOKEN_URL") || probe.value("GITHUB_TOKEN_FILE") != nil || probe.value("GH_TOKEN_FILE") != nil
    }

    public func makeStep() -> ProvisioningStep? { TokenRefreshStep(login: GitHubLogin.process) }
}
