import BerthCore
import BerthHTTP
import BerthProvisioning

/// Where a fresh token comes from: a secret file that Docker or Kubernetes
/// rotate in place, or an endpoint that hands out tokens.
enum TokenSource {
    /// GITHUB_TOKEN_FILE or GH_TOKEN_FILE, re-read at every refresh.
    case file(variable: String)
    /// GITHUB_TOKEN_URL, with a bearer credential read from
    /// GITHUB_TOKEN_URL_AUTH_FILE at every refresh (it may rotate too).
    case endpoint(url: String, authFile: String?)

    /// The endpoint wins when both are given: it is the fresher source.
    static func fromSettings(_ settings: Settings) throws(SettingError) -> TokenSource? {
        if let url = settings.value("GITHUB_TOKEN_URL") {
            // No spaces or control characters: it travels to the fetch
            // helper as one line.
            guard url.hasPrefix("https://") || url.hasPrefix("http://"), url.utf8.count <= FetchLines.valueLimit,
                  url.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value != 0x7f }) else {
                throw SettingError("GITHUB_TOKEN_URL='\(redactedURL(url))': expected an http(s) URL")
            }
            return .endpoint(url: url, authFile: settings.value("GITHUB_TOKEN_URL_AUTH_FILE"))
        }
        for name in ["GH_TOKEN", "GITHUB_TOKEN"] where settings.value(name + "_FILE") != nil {
            return .file(variable: name)
        }
        return nil
    }

    var name: String {
        switch self {
        case .file(let variable): variable + "_FILE"
        case .endpoint: "GITHUB_TOKEN_URL"
        }
    }

    /// Reads the current token: a file here, an endpoint through the
    /// fetch helper (which PID 1 can end early with the handle).
    @discardableResult
    func read(settings: Settings, loop: EventLoop, timeout: Duration, done: @escaping (Result<GitHubToken, SettingError>) -> Void) -> HelperHandle? {
        switch self {
        case .file(let variable):
            do throws(SettingError) {
                guard let secret = try settings.secret(variable) else { throw SettingError("\(variable)_FILE is not set") }
                done(.success(try GitHubToken.checked(secret, source: variable + "_FILE")))
            } catch {
                done(.failure(error))
            }
            return nil
        case .endpoint(let url, let authFile):
            var request = [("url", url)]
            if let authFile {
                // Read here, as root: the helper runs as nobody and gets
                // the credential on its stdin.
                let credential: Secret
                do throws(SettingError) {
                    credential = try settings.secret(fromFile: authFile, variable: "GITHUB_TOKEN_URL_AUTH_FILE")
                } catch {
                    done(.failure(error))
                    return nil
                }
                // A newline in it would start a header of its own.
                guard credential.bytes.allSatisfy({ $0 > 0x20 && $0 < 0x7f }), credential.bytes.count <= FetchLines.valueLimit else {
                    done(.failure(SettingError("GITHUB_TOKEN_URL_AUTH_FILE=\(authFile): the credential must be one word of printable ASCII")))
                    return nil
                }
                request.append(("bearer", credential.text))
            }
            let shown = redactedURL(url)
            return FetchHelper.run("token", request: request, answerKeys: TokenEndpointFetch.answerKeys, settings: settings, timeout: timeout,
                                   loop: loop) { result in
                let fields = result.fields(variable: "GITHUB_TOKEN_URL", shown: shown) {
                    SettingError("GITHUB_TOKEN_URL: GET \(shown) answered HTTP 401 (\($0))")
                }
                // Checked again: PID 1 trusts no byte the helper sends.
                done(fields.flatMap { fields in
                    guard let token = fields["token"] else {
                        return .failure(SettingError("GITHUB_TOKEN_URL: GET \(shown) answered without a token"))
                    }
                    return Result { () throws(SettingError) in try GitHubToken.checked(Secret(Array(token.utf8)), source: "GITHUB_TOKEN_URL") }
                })
            }
        }
    }
}

/// `berth fetch token`: the helper's half of the endpoint source. Reads
/// url, bearer (optional) and timeout-ms on stdin; answers result=ok and
/// token=…, or why not.
public enum TokenEndpointFetch {
    static let answerKeys: Set<String> = ["token"]

    public static func run() -> Int32 {
        FetchHelper.restoreDefaultSignals()
        let request: (values: [String: String], timeout: Duration)
        switch FetchHelper.readRequest(keys: ["url", "bearer"]) {
        case .success(let read): request = read
        case .failure(let error): return FetchHelper.refuse(error)
        }
        guard let url = request.values["url"] else { return FetchHelper.refuse(FetchProtocolError("stdin: no url")) }
        var headers = ["Accept: application/json"]
        if let bearer = request.values["bearer"] { headers.append("Authorization: Bearer " + bearer) }
        switch HTTPRequest(url: url, headers: headers, timeout: request.timeout, bodyLimit: 64 << 10).performWaiting() {
        case .failure(let failure): return FetchHelper.answer(FetchHelper.transport(failure.message, url: url))
        case .success(let response) where response.status != 200: return FetchHelper.answer(.status(response.status))
        case .success(let response): return FetchHelper.answer(outcome(body: response.text))
        }
    }

    /// `{"token": "..."}` (GitHub's own token APIs answer so), or the token
    /// alone as plain text; either way a GitHub token's characters only.
    static func outcome(body: String) -> FetchOutcome {
        let trimmed = body.trimmingWhitespace()
        let text: String
        if trimmed.hasPrefix("{") {
            guard let json = try? JSON.parse(trimmed), let token = json["token"]?.stringValue else {
                return .invalid(what: "JSON without a \"token\" string")
            }
            text = token
        } else {
            text = trimmed
        }
        do {
            return .answered(["token": try GitHubToken.checked(Secret(Array(text.utf8)), source: "GITHUB_TOKEN_URL").secret.text])
        } catch {
            return .invalid(what: "something that is not a GitHub token (only letters, digits, '_', '-' and '.' may appear in one)")
        }
    }
}
