import BerthCore
import BerthProvisioning
import Glibc

/// Validate a token with GitHub, then install it for gh and git. Shared by
/// github-auth (at start) and token-refresh (every few minutes), which
/// skips the work when the token has not changed.
public final class GitHubLogin {
    /// The token this process installed last; nil before the first success.
    public private(set) var installed: GitHubToken?

    public init() {}

    /// The one github-auth and token-refresh share in this process, so a
    /// refresh knows which token the start installed.
    nonisolated(unsafe) public static let process = GitHubLogin()

    /// Fails with the variable named and the previous files untouched.
    public func login(_ token: GitHubToken, context: StepContext, done: @escaping (Result<String, SettingError>) -> Void) {
        let user: UserAccount
        let api: GitHubAPI
        switch context.user {
        case .success(let found): user = found
        case .failure(let error): return done(.failure(error))
        }
        do {
            api = try GitHubAPI.fromSettings(context.settings)
        } catch {
            return done(.failure(error))
        }
        let host = api.host(settings: context.settings)
        guard host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || ".-:".contains($0)) }) else {
            return done(.failure(SettingError("GH_HOST='\(host)': expected a host name, like github.com")))
        }
        let gitName = context.settings.value("GIT_USER_NAME")
        let gitEmail = context.settings.value("GIT_USER_EMAIL")
        // Bad input is named before GitHub is asked anything.
        do {
            if let gitName { _ = try configValue(gitName, from: "GIT_USER_NAME") }
            if let gitEmail { _ = try configValue(gitEmail, from: "GIT_USER_EMAIL") }
        } catch {
            return done(.failure(error))
        }
        let credentials = GitHubCredentials(user: user, host: host, gh: findExecutable("gh", settings: context.settings),
                                            gitName: gitName, gitEmail: gitEmail)
        context.helpers.add(api.identify(token, settings: context.settings, on: context.loop) { [self] result in
            switch result {
            case .failure(let error):
                done(.failure(error))
            case .success(let identity):
                guard identity.login.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else {
                    return done(.failure(SettingError("GITHUB_API_URL: the API answered a login that is not a GitHub login")))
                }
                do {
                    let detail = try credentials.install(token, for: identity)
                    installed = token
                    done(.success(detail))
                } catch {
                    done(.failure(SettingError("\(error)")))
                }
            }
        })
    }
}
