import BerthCore
import BerthHTTP
import BerthProvisioning

/// The REST API at GITHUB_API_URL (GitHub Enterprise, or a test server).
public struct GitHubAPI: Sendable {
    public let baseURL: String
    public let timeout: Duration

    public static func fromSettings(_ settings: Settings) throws(SettingError) -> GitHubAPI {
        var base = settings.value("GITHUB_API_URL", default: "https://api.github.com")
        guard base.hasPrefix("https://") || base.hasPrefix("http://"), base.count > "https://".count else {
            throw SettingError("GITHUB_API_URL='\(base)': expected an http(s) URL, like https://api.github.com")
        }
        while base.hasSuffix("/") { base.removeLast() }
        return GitHubAPI(baseURL: base, timeout: try httpTimeout(settings))
    }

    /// The host gh and git know the account by: GH_HOST, else github.com
    /// for api.github.com, else the API's own host (GitHub Enterprise
    /// serves its API at https://HOST/api/v3).
    public func host(settings: Settings) -> String {
        if let host = settings.value("GH_HOST") { return host }
        let afterScheme = baseURL.split(separator: "/", maxSplits: 3, omittingEmptySubsequences: true)
        let authority = afterScheme.count > 1 ? String(afterScheme[1]) : "github.com"
        return authority == "api.github.com" ? "github.com" : authority
    }

    /// `GET /user` with the token: who it belongs to, or why not.
    @discardableResult
    public func identify(_ token: GitHubToken, on loop: EventLoop, done: @escaping (Result<GitHubIdentity, SettingError>) -> Void) -> HTTPExchange {
        let url = baseURL + "/user"
        let request = HTTPRequest(url: url, headers: [
            "Authorization: Bearer " + token.secret.text,
            "Accept: application/vnd.github+json",
            "X-GitHub-Api-Version: 2022-11-28",
        ], timeout: timeout)
        return loop.fetch(request) { result in
            switch result {
            case .failure(let failure):
                done(.failure(SettingError("GITHUB_API_URL: GET \(url) failed: \(failure.message)")))
            case .success(let response) where response.status == 401:
                let message = (try? JSON.parse(response.text))?["message"]?.stringValue ?? "401"
                done(.failure(SettingError("\(token.source): GitHub rejected the token (\(message))")))
            case .success(let response) where response.status != 200:
                done(.failure(SettingError("GITHUB_API_URL: GET \(url) answered HTTP \(response.status)")))
            case .success(let response):
                done(Self.identity(from: response.text, url: url))
            }
        }
    }

    static func identity(from text: String, url: String) -> Result<GitHubIdentity, SettingError> {
        let json: JSON
        do {
            json = try JSON.parse(text)
        } catch {
            return .failure(SettingError("GITHUB_API_URL: GET \(url) answered with malformed JSON (\(error))"))
        }
        guard let login = json["login"]?.stringValue, !login.isEmpty, let id = json["id"]?.intValue else {
            return .failure(SettingError("GITHUB_API_URL: GET \(url) answered without a user's login and id"))
        }
        return .success(GitHubIdentity(login: login, id: id, name: json["name"]?.stringValue, email: json["email"]?.stringValue))
    }
}

/// BERTH_HTTP_TIMEOUT: seconds one request may take (default 10).
public func httpTimeout(_ settings: Settings) throws(SettingError) -> Duration {
    guard let text = settings.value("BERTH_HTTP_TIMEOUT") else { return .seconds(10) }
    guard let seconds = Double(text), seconds > 0, seconds <= 3600 else {
        throw SettingError("BERTH_HTTP_TIMEOUT='\(text)': expected seconds, like 10")
    }
    return .milliseconds(Int(seconds * 1000))
}
