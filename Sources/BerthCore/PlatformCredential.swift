/// The platform's credentials: shared across workspaces, so the workspace
/// user must never read them. berth hands them to the workspace supervisor
/// alone, as files only its own user can read, and keeps them from every
/// other environment; the supervisor loads them through this list and
/// scrubs the same list from its environment, so a credential cannot be
/// added to one side and forgotten on the other.
public enum PlatformCredential: String, CaseIterable, Sendable {
    case agentAPIKey = "SUPERVISOR_AGENT_API_KEY"
    case awsSecretAccessKey = "AWS_SECRET_ACCESS_KEY"
    case azureSASURL = "SUPERVISOR_BACKUP_AZURE_SAS_URL"
    /// The original images' Azure account key (Shared Key signatures).
    case azureAccountKey = "AZURE_BLOB_ACCOUNT_KEY"
    case httpToken = "SUPERVISOR_HTTP_TOKEN"
    /// The backup repositories' password (restic's).
    case backupPassword = "SUPERVISOR_BACKUP_PASSWORD"

    /// The variables' names. Spelled out rather than `allCases.map`: every
    /// start asks for them, and the first array of this enum costs the
    /// Swift runtime ~14,000 instructions of metadata (callgrind); a test
    /// keeps the two equal.
    public static let names = [
        agentAPIKey.rawValue, awsSecretAccessKey.rawValue, azureSASURL.rawValue, azureAccountKey.rawValue, httpToken.rawValue, backupPassword.rawValue,
    ]
}
