import BerthCore
import Glibc

/// Azure Blob Storage's Shared Key authorization for Put Blob: the request's
/// canonical form signed with HMAC-SHA256 under the account key. The key
/// stays in this process; only the signature travels.
enum AzureSharedKeySigning {
    static let version = "2021-08-06"

    /// The URL and headers of a Put Blob of `length` bytes at `blob` (a
    /// path inside the container), signed at `date` (RFC 1123, GMT).
    static func putBlob(_ target: SupervisorSettings.AzureSharedKey, blob: String, length: Int, contentType: String,
                        date: String) -> (url: String, headers: [String]) {
        let canonicalHeaders = "x-ms-blob-type:BlockBlob\nx-ms-date:\(date)\nx-ms-version:\(version)\n"
        let resource = "/\(target.account)/\(target.container)/\(blob)"
        // VERB, Content-Encoding, -Language, -Length (empty for 0), -MD5,
        // -Type, Date, If-Modified-Since, If-Match, If-None-Match,
        // If-Unmodified-Since, Range; then the x-ms- headers and the resource.
        let stringToSign = "PUT\n\n\n\(length == 0 ? "" : String(length))\n\n\(contentType)\n\n\n\n\n\n\n" + canonicalHeaders + resource
        let signature = Base64.encode(HMACSHA256.mac(key: target.key.bytes, message: Array(stringToSign.utf8)))
        return ("\(target.endpoint)/\(target.container)/\(blob)", [
            "Content-Type: \(contentType)", "x-ms-blob-type: BlockBlob", "x-ms-date: \(date)", "x-ms-version: \(version)",
            "Authorization: SharedKey \(target.account):\(signature)",
        ])
    }

    /// Now, as Azure's x-ms-date wants it.
    static func now() -> String {
        var seconds = time(nil)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : String(value) }
        return "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }
}
