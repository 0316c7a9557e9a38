import BerthCore
import BerthProvisioning

/// github-auth: GH_TOKEN or GITHUB_TOKEN (or _FILE), checked with
/// `GET /user`, then installed for gh and git (see GitHubCredentials). No
/// `gh auth login`: it refuses to run while GH_TOKEN is set (cli/cli#2922),
/// and the token would have to pass through a pipe to a tool berth does not
/// need.
public final class GitHubAuthStep: ProvisioningStep {
    public let name = "github-auth"
    public let dependencies: [String] = []
    let login: GitHubLogin

    public init(login: GitHubLogin) {
        self.login = login
    }

    public func skipReason(given inputs: StepInputs) -> String? {
        let settings = inputs.settings
        guard settings.isSet("GH_TOKEN") || settings.isSet("GITHUB_TOKEN") else { return "GITHUB_TOKEN and GH_TOKEN are not set" }
        if findExecutable("gh", settings: settings) == nil && findExecutable("git", settings: settings) == nil {
            return "neither gh nor git is installed"
        }
        return inputs.cannotWriteHome()
    }

    public func run(in context: StepContext, done: @escaping (StepOutcome) -> Void) {
        let token: GitHubToken
        do {
            guard let found = try GitHubToken.fromSettings(context.settings) else {
                return done(.skipped("GITHUB_TOKEN and GH_TOKEN are not set"))
            }
            token = found
        } catch {
            return done(.failed(error.message))
        }
        login.login(token, context: context) { result in
            switch result {
            case .success(let detail): done(.ok(detail))
            case .failure(let error): done(.failed(error.message))
            }
        }
    }
}
