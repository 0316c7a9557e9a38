import BerthCore
import BerthHTTP
import BerthProvisioning
import GitHubAuthPlugin

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
            guard url.hasPrefix("https://") || url.hasPrefix("http://") else {
                throw SettingError("GITHUB_TOKEN_URL='\(url)': expected an http(s) URL")
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

    /// Reads the current token; the exchange (if any) can be cancelled.
    @discardableResult
    func read(settings: Settings, loop: EventLoop, timeout: Duration, done: @escaping (Result<GitHubToken, SettingError>) -> Void) -> HTTPExchange? {
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
            var headers = ["Accept: application/json"]
            if let authFile {
                let credential: Secret
                do throws(SettingError) {
                    credential = try settings.secret(fromFile: authFile, variable: "GITHUB_TOKEN_URL_AUTH_FILE")
                } catch {
                    done(.failure(error))
                    return nil
                }
                // A newline in it would start a header of its own.
                guard credential.bytes.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else {
                    done(.failure(SettingError("GITHUB_TOKEN_URL_AUTH_FILE=\(authFile): the credential must be one word of printable ASCII")))
                    return nil
                }
                headers.append("Authorization: Bearer " + credential.text)
            }
            return loop.fetch(HTTPRequest(url: url, headers: headers, timeout: timeout, bodyLimit: 64 << 10)) { result in
                switch result {
                case .failure(let failure):
                    done(.failure(SettingError("GITHUB_TOKEN_URL: GET \(url) failed: \(failure.message)")))
                case .success(let response) where response.status != 200:
                    done(.failure(SettingError("GITHUB_TOKEN_URL: GET \(url) answered HTTP \(response.status)")))
                case .success(let response):
                    done(Self.token(in: response.text, url: url))
                }
            }
        }
    }

    /// `{"token": "..."}` (GitHub's own token APIs answer so), or the token
    /// alone as plain text.
    static func token(in body: String, url: String) -> Result<GitHubToken, SettingError> {
        let trimmed = body.trimmingWhitespace()
        let text: String
        if trimmed.hasPrefix("{") {
            guard let json = try? JSON.parse(trimmed), let token = json["token"]?.stringValue else {
                return .failure(SettingError("GITHUB_TOKEN_URL: GET \(url) answered JSON without a \"token\" string"))
            }
            text = token
        } else {
            text = trimmed
        }
        do {
            return .success(try GitHubToken.checked(Secret(Array(text.utf8)), source: "GITHUB_TOKEN_URL"))
        } catch {
            return .failure(error)
        }
    }
}
