/// A URL as berth shows it (errors, logs, provision.json,
/// token-refresh.json, `berth health`): `https://user:pass@host/t?key=v`
/// becomes `https://***@host/t?***`. Userinfo and query strings carry
/// credentials (presigned URLs, `?access_token=`), and everything berth
/// shows lands in 0644 files or a log collector. Scheme, host, port and
/// path stay: they are what one needs to tell which endpoint failed.
/// Control characters become `?` so a URL cannot forge log lines.
public func redactedURL(_ url: String) -> String {
    var rest = Substring(url)
    var shown = ""
    if let separator = rest.firstRange(of: "://") {
        shown += rest[..<separator.upperBound]
        rest = rest[separator.upperBound...]
    }
    let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
    let authority = rest[..<authorityEnd]
    if let at = authority.lastIndex(of: "@") {
        shown += "***@" + authority[authority.index(after: at)...]
    } else {
        shown += authority
    }
    rest = rest[authorityEnd...]
    if let queryStart = rest.firstIndex(where: { $0 == "?" || $0 == "#" }) {
        shown += rest[..<queryStart] + "?***"
    } else {
        shown += rest
    }
    return String(shown.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7f ? "?" : Character($0) })
}
