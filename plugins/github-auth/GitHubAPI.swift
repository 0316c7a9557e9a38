import BerthCore
import BerthHTTP
import BerthProvisioning

/// The REST API at GITHUB_API_URL (GitHub Enterprise, or a test server).
public struct GitHubAPI: Sendable {
    public let baseURL: String
    public let timeout: Duration

    public static func fromSettings(_ settings: Settings) throws(SettingError) -> GitHubAPI {
        var base = settings.value("GITHUB_API_URL", default: "https://api.github.com")
        // No spaces or control characters: the URL travels to the fetch
        // helper as one line.
        guard base.hasPrefix("https://") || base.hasPrefix("http://"), base.count > "https://".count, base.utf8.count < FetchLines.valueLimit - 16,
              base.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value != 0x7f }) else {
            throw SettingError("GITHUB_API_URL='\(redactedURL(base))': expected an http(s) URL, like https://api.github.com")
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
        var authority = afterScheme.count > 1 ? afterScheme[1] : "github.com"
        // user:pass@host?sig=… names the host, not the credentials.
        authority = authority.prefix { $0 != "?" && $0 != "#" }
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        return authority == "api.github.com" ? "github.com" : String(authority)
    }

    /// `GET /user` with the token, in the fetch helper: who it belongs to,
    /// or why not. Messages show the URL redacted.
    @discardableResult
    public func identify(_ token: GitHubToken, settings: Settings, on loop: EventLoop,
                         done: @escaping (Result<GitHubIdentity, SettingError>) -> Void) -> HelperHandle {
        let url = baseURL + "/user"
        let shown = redactedURL(url)
        return FetchHelper.run("github-user", request: [("url", url), ("token", token.secret.text)], answerKeys: GitHubUserFetch.answerKeys,
                               settings: settings, timeout: timeout, loop: loop) { result in
            let fields = result.fields(variable: "GITHUB_API_URL", shown: shown) {
                SettingError("\(token.source): GitHub rejected the token (\($0))")
            }
            done(fields.flatMap { fields in
                GitHubUserFetch.identity(from: fields).mapError { SettingError("GITHUB_API_URL: GET \(shown) answered \($0.message)") }
            })
        }
    }
}

/// `berth fetch github-user`: the helper's half of `identify`. Reads url,
/// token and timeout-ms on stdin; answers result=ok with login, id and
/// (when GitHub has them) name and email, or why not.
public enum GitHubUserFetch {
    static let answerKeys: Set<String> = ["login", "id", "name", "email"]

    public static func run() -> Int32 {
        FetchHelper.restoreDefaultSignals()
        let request: (values: [String: String], timeout: Duration)
        switch FetchHelper.readRequest(keys: ["url", "token"]) {
        case .success(let read): request = read
        case .failure(let error): return FetchHelper.refuse(error)
        }
        guard let url = request.values["url"], let token = request.values["token"] else {
            return FetchHelper.refuse(FetchProtocolError("stdin: no url or token"))
        }
        let response = HTTPRequest(url: url, headers: [
            "Authorization: Bearer " + token,
            "Accept: application/vnd.github+json",
            "X-GitHub-Api-Version: 2022-11-28",
        ], timeout: request.timeout, bodyLimit: 1 << 20).performWaiting()
        switch response {
        case .failure(let failure): return FetchHelper.answer(FetchHelper.transport(failure.message, url: url))
        case .success(let response): return FetchHelper.answer(outcome(status: response.status, body: response.text))
        }
    }

    /// What GitHub's answer means. All checks on network data happen here,
    /// in the helper; PID 1 repeats the cheap ones in `identity(from:)`.
    static func outcome(status: Int, body: String) -> FetchOutcome {
        if status == 401 {
            return .rejected(message: (try? JSON.parse(body))?["message"]?.stringValue ?? "401")
        }
        guard status == 200 else { return .status(status) }
        let json: JSON
        do {
            json = try JSON.parse(body)
        } catch {
            return .invalid(what: "with malformed JSON (\(error))")
        }
        guard let login = json["login"]?.stringValue, !login.isEmpty, let id = json["id"]?.intValue else {
            return .invalid(what: "without a user's login and id")
        }
        var fields = ["login": login, "id": String(id)]
        fields["name"] = json["name"]?.stringValue
        fields["email"] = json["email"]?.stringValue
        if case .failure(let error) = identity(from: fields) { return .invalid(what: error.message) }
        return .answered(fields)
    }

    /// The identity PID 1 uses, from fields the line parser already held
    /// to printable UTF-8: a login as GitHub allows them (letters, digits,
    /// '-', '_'; it becomes a YAML key and a URL's user), a positive id.
    static func identity(from fields: [String: String]) -> Result<GitHubIdentity, FetchProtocolError> {
        guard let login = fields["login"], let idText = fields["id"], let id = Int(idText), id > 0 else {
            return .failure(FetchProtocolError("without a user's login and id"))
        }
        guard (1...39).contains(login.utf8.count), login.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else {
            return .failure(FetchProtocolError("a login that is not a GitHub login"))
        }
        for key in ["name", "email"] {
            if let value = fields[key], value.utf8.count > 256 || value.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) {
                return .failure(FetchProtocolError("a \(key) with control characters or over 256 bytes"))
            }
        }
        return .success(GitHubIdentity(login: login, id: id, name: fields["name"], email: fields["email"]))
    }
}

/// BERTH_HTTP_TIMEOUT: seconds one request may take (default 10).
public func httpTimeout(_ settings: Settings) throws(SettingError) -> Duration {
    try settings.duration("BERTH_HTTP_TIMEOUT", default: .seconds(10), in: .milliseconds(1)...(.seconds(3600)))
}
