import BerthProvisioning

/// ai-cli: the AI CLIs' keys for every shell, each CLI's config, and
/// code-server's Copilot settings.
public struct AICLIPlugin: Plugin {
    public var name: String { "ai-cli" }
    public var summary: String { "AI CLIs' keys for every shell of the workspace user, each CLI's own config, Copilot on in code-server." }
    static let keyVariables = ["ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY"]
    public var variables: [PluginVariable] {
        AICLIPlugin.keyVariables.map { name in
            PluginVariable(name, .secret, """
                into `~/.config/berth/ai-cli.env` (0600), which a snippet at the top of `~/.profile` and `~/.bashrc` loads; also Codex's \
                `~/.codex/auth.json`, Gemini CLI's `~/.gemini/.env` and auth choice, Claude Code's `apiKeyHelper`
                """)
        } + ["GITHUB_TOKEN", "GH_TOKEN"].map { name in
            // github-auth declares them as its secrets; here a token alone is
            // reason enough: Copilot uses it.
            PluginVariable(name, .request, "a GitHub token alone turns on Copilot in code-server's settings (the token itself is github-auth's)")
        }
    }
    public init() {}

    public func mayHaveWork(_ probe: StartProbe) -> Bool {
        probe.isSet("ANTHROPIC_API_KEY") || probe.isSet("OPENAI_API_KEY") || probe.isSet("GEMINI_API_KEY") || probe.isSet("GOOGLE_API_KEY")
            || probe.isSet("GITHUB_TOKEN") || probe.isSet("GH_TOKEN")
    }
    public func makeStep() -> ProvisioningStep? { AICLIStep(requesting: requestingVariables) }
}
