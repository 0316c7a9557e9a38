import BerthCore
import BerthProvisioning

/// A GitHub token and where it came from (a variable name, for messages
/// that must never show the value).
public struct GitHubToken: Equatable, Sendable {
    public let secret: Secret
    public let source: String

    /// GH_TOKEN before GITHUB_TOKEN, as gh itself reads them; each also as
    /// NAME_FILE.
    public static func fromSettings(_ settings: Settings) throws(SettingError) -> GitHubToken? {
        for name in ["GH_TOKEN", "GITHUB_TOKEN"] {
            guard let secret = try settings.secret(name) else { continue }
            let source = settings.isSet(name + "_FILE") && settings.value(name) == nil ? name + "_FILE" : name
            return try checked(secret, source: source)
        }
        return nil
    }

    /// Tokens are ASCII letters, digits and `_` (ghp_, gho_, ghs_,
    /// github_pat_…). Anything else, a newline above all, could smuggle an
    /// HTTP header or a YAML key, so it is refused with the source named.
    public static func checked(_ secret: Secret, source: String) throws(SettingError) -> GitHubToken {
        guard !secret.bytes.isEmpty, secret.bytes.count <= 1024 else {
            throw SettingError("\(source): a token is 1 to 1024 characters long")
        }
        for byte in secret.bytes {
            let allowed = (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".")
            guard allowed else {
                throw SettingError("\(source): not a GitHub token (only letters, digits, '_', '-' and '.' may appear in one)")
            }
        }
        return GitHubToken(secret: secret, source: source)
    }
}

/// Who a token belongs to, from `GET /user`.
public struct GitHubIdentity: Equatable, Sendable {
    public let login: String
    public let id: Int
    public let name: String?
    public let email: String?

    /// GitHub's private commit address when the profile shows none.
    public var commitEmail: String { email ?? "\(id)+\(login)@users.noreply.github.com" }
}
