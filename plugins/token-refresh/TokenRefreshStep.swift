import BerthCore
import BerthProvisioning
import Glibc

/// token-refresh: every BERTH_TOKEN_REFRESH_INTERVAL seconds (default 300)
/// re-read the token source and, when the token changed, validate it and
/// rewrite gh's and git's credentials. At start it refreshes once, as its
/// provisioning step; then it lives on berth's loop timer.
public final class TokenRefreshStep: ProvisioningStep {
    public let name = "token-refresh"
    /// Not a declared dependency on github-auth: a start token GitHub
    /// rejected must not stop the refreshes that would replace it. It runs
    /// after github-auth by its place in the list.
    public let dependencies: [String] = []
    let login: GitHubLogin
    var refresher: TokenRefresher?

    public init(login: GitHubLogin) {
        self.login = login
    }

    public func skipReason(given inputs: StepInputs) -> String? {
        let settings = inputs.settings
        guard settings.value("GITHUB_TOKEN_URL") != nil || settings.value("GITHUB_TOKEN_FILE") != nil || settings.value("GH_TOKEN_FILE") != nil else {
            return "nothing to refresh from (GITHUB_TOKEN_FILE, GH_TOKEN_FILE or GITHUB_TOKEN_URL)"
        }
        if findExecutable("gh", settings: settings) == nil && findExecutable("git", settings: settings) == nil {
            return "neither gh nor git is installed"
        }
        return inputs.cannotWriteHome()
    }

    public func run(in context: StepContext, done: @escaping (StepOutcome) -> Void) {
        let settings = context.settings
        let source: TokenSource
        let interval: Duration
        let timeout: Duration
        do throws(SettingError) {
            guard let found = try TokenSource.fromSettings(settings) else { return done(.skipped("nothing to refresh from")) }
            source = found
            interval = try refreshInterval(settings)
            timeout = try httpTimeout(settings)
        } catch {
            return done(.failed(error.message))
        }
        let statePath = settings.value("BERTH_RUN_DIR", default: "/run/berth") + "/token-refresh.json"
        let refresher = TokenRefresher(context: context, login: login, source: source, interval: interval, timeout: timeout, statePath: statePath)
        self.refresher = refresher
        refresher.refresh { [refresher] result in
            let every = "every \(interval.shortDescription) from \(source.name)"
            if context.persistent { refresher.scheduleNext() }
            switch result {
            case .success(let what): done(.ok("\(every); \(what)"))
            case .failure(let error): done(.failed(error.message + (context.persistent ? "; retrying with backoff" : "")))
            }
        }
    }

    func refreshInterval(_ settings: Settings) throws(SettingError) -> Duration {
        try settings.duration("BERTH_TOKEN_REFRESH_INTERVAL", default: .seconds(300), in: .seconds(1)...(.seconds(86_400)))
    }
}
