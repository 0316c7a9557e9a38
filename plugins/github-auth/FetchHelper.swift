import BerthCore
import BerthProvisioning
import Glibc

/// HTTP leaves PID 1: each request GitHub auth or token refresh makes runs
/// in `berth fetch VERB`, berth re-executed through /proc/self/exe. libcurl
/// maps ~25 libraries (OpenSSL, GnuTLS, Kerberos, LDAP…) and parses what
/// the network sends; a crash there must end a short-lived process, not
/// the container. When berth is root the helper runs as nobody
/// (65534:65534, no groups) with no_new_privs, in `/`, with PATH and the
/// TLS/proxy variables only. It does every parse of network data and
/// answers in `FetchLines`, which PID 1 checks again before use.
///
/// Both ways the language is `key=value` lines: each key once, from a
/// fixed set; values without control characters, valid UTF-8, at most
/// `valueLimit` bytes; the whole at most `limit` bytes. Secrets (the
/// GitHub token, the endpoint's bearer) and URLs (which may hold userinfo)
/// travel in it on stdin, never in argv or the environment.
public enum FetchLines {
    public static let limit = 8192
    public static let valueLimit = 1024

    public static func render(_ pairs: [(String, String)]) -> [UInt8] {
        Array(pairs.map { "\($0.0)=\($0.1)\n" }.joined().utf8)
    }

    /// The pairs, or why the text is not in the language.
    public static func parse(_ bytes: [UInt8], keys: Set<String>) -> Result<[String: String], FetchProtocolError> {
        guard bytes.count <= limit else { return .failure(FetchProtocolError("more than \(limit) bytes")) }
        guard bytes.last == UInt8(ascii: "\n") else { return .failure(FetchProtocolError("no final newline")) }
        var values: [String: String] = [:]
        for line in bytes.dropLast().split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            guard let equals = line.firstIndex(of: UInt8(ascii: "=")) else { return .failure(FetchProtocolError("a line without '='")) }
            let key = String(decoding: line[..<equals], as: UTF8.self)
            let value = line[(equals + 1)...]
            guard keys.contains(key) else { return .failure(FetchProtocolError("unexpected key '\(printable(key, limit: 40))'")) }
            guard values[key] == nil else { return .failure(FetchProtocolError("'\(key)' twice")) }
            guard value.count <= valueLimit else { return .failure(FetchProtocolError("'\(key)' longer than \(valueLimit) bytes")) }
            guard value.allSatisfy({ $0 >= 0x20 && $0 != 0x7f }), let text = String(validating: value, as: UTF8.self) else {
                return .failure(FetchProtocolError("'\(key)' with control characters or invalid UTF-8"))
            }
            values[key] = text
        }
        return .success(values)
    }

    /// Network text made fit for one line of a message: control characters
    /// become '?', and it is cut at `limit` characters.
    public static func printable(_ text: String, limit: Int = 200) -> String {
        let cleaned = String(text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7f ? "?" : Character($0) })
        return cleaned.count > limit ? String(cleaned.prefix(limit)) + "…" : cleaned
    }
}

public struct FetchProtocolError: Error, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The helper's answer. Only `answered` carries data from the body; the
/// other cases carry a status or a short, printable message.
public enum FetchOutcome: Equatable {
    /// HTTP 200 and a body that passed the verb's checks: its fields.
    case answered([String: String])
    /// HTTP 401 with the server's own message (GitHub's "Bad credentials").
    case rejected(message: String)
    /// Another HTTP status than 200.
    case status(Int)
    /// No HTTP answer: refused, timed out, an answer over the size limit.
    case transport(message: String)
    /// HTTP 200 with a body the helper refused; `what` completes
    /// "GET URL answered …".
    case invalid(what: String)

    static let replyKeys: Set<String> = ["result", "message", "status"]

    var pairs: [(String, String)] {
        switch self {
        case .answered(let fields): [("result", "ok")] + fields.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        case .rejected(let message): [("result", "rejected"), ("message", FetchLines.printable(message))]
        case .status(let status): [("result", "status"), ("status", String(status))]
        case .transport(let message): [("result", "transport"), ("message", FetchLines.printable(message))]
        case .invalid(let what): [("result", "invalid"), ("message", FetchLines.printable(what))]
        }
    }

    /// PID 1's reading of the helper's stdout: strict, whatever the helper
    /// (or whoever took it over) wrote.
    static func parse(_ bytes: [UInt8], answerKeys: Set<String>) -> Result<FetchOutcome, FetchProtocolError> {
        let values: [String: String]
        switch FetchLines.parse(bytes, keys: replyKeys.union(answerKeys)) {
        case .success(let parsed): values = parsed
        case .failure(let error): return .failure(error)
        }
        switch (values["result"], values["message"]) {
        case ("ok", _):
            return .success(.answered(values.filter { answerKeys.contains($0.key) }))
        case ("status", _):
            guard let text = values["status"], let status = Int(text), (100...599).contains(status) else {
                return .failure(FetchProtocolError("a status that is not an HTTP status"))
            }
            return .success(.status(status))
        case ("rejected", let message?): return .success(.rejected(message: message))
        case ("transport", let message?): return .success(.transport(message: message))
        case ("invalid", let message?): return .success(.invalid(what: message))
        default: return .failure(FetchProtocolError("no known result"))
        }
    }
}

extension Result where Success == FetchOutcome, Failure == FetchProtocolError {
    /// The answer's fields, or an error naming `variable` and the URL as
    /// shown (redacted); `rejected` words a 401 for its caller.
    public func fields(variable: String, shown: String, rejected: (String) -> SettingError) -> Result<[String: String], SettingError> {
        switch self {
        case .failure(let error): .failure(SettingError("\(variable): GET \(shown) failed: \(error.message)"))
        case .success(.transport(let message)): .failure(SettingError("\(variable): GET \(shown) failed: \(message)"))
        case .success(.status(let status)): .failure(SettingError("\(variable): GET \(shown) answered HTTP \(status)"))
        case .success(.rejected(let message)): .failure(rejected(message))
        case .success(.invalid(let what)): .failure(SettingError("\(variable): GET \(shown) answered \(what)"))
        case .success(.answered(let fields)): .success(fields)
        }
    }
}

public enum FetchHelper {
    /// Variables libcurl reads for TLS and proxies, passed to the helper
    /// when set. Not secret by berth's rules: a proxy URL is
    /// infrastructure; a proxy password in one is visible to the helper's
    /// own uid and root only (/proc/PID/environ is 0400).
    static let networkVariables = [
        "SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE",
        "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy",
    ]

    /// The uid and gid of `nobody`: fixed, so no user database is read (the
    /// container's /etc/passwd belongs to the workspace user's root).
    static let nobody: uid_t = 65534

    /// Runs `berth fetch VERB` with `request` on its stdin; `done` runs on
    /// the loop once, with the checked answer or why there is none. The
    /// helper gets `timeout` for its request, and two seconds more before
    /// its process group is killed.
    @discardableResult
    public static func run(_ verb: String, request: [(String, String)], answerKeys: Set<String>, settings: Settings, timeout: Duration,
                           loop: EventLoop, done: @escaping (Result<FetchOutcome, FetchProtocolError>) -> Void) -> HelperHandle {
        let milliseconds = timeout.milliseconds
        var command = HelperCommand(arguments: ["/proc/self/exe", "fetch", verb], timeout: timeout + .seconds(2))
        command.request.environment = HelperCommand.toolEnvironment() + networkVariables.compactMap { name in
            settings.value(name).map { "\(name)=\($0)" }
        }
        command.request.workingDirectory = "/"
        if getuid() == 0 {
            command.request.identity = SpawnRequest.Identity(uid: nobody, gid: nobody, groups: [])
        }
        command.request.noNewPrivileges = true
        // PDEATHSIG is set after the change of uid (it would be cleared).
        command.request.parentDeathSignal = SIGKILL
        command.input = FetchLines.render(request + [("timeout-ms", String(max(1, milliseconds)))])
        command.outputLimit = FetchLines.limit
        return loop.runHelper(command) { result in
            done(outcome(of: result, answerKeys: answerKeys, timeout: timeout))
        }
    }

    static func outcome(of result: HelperResult, answerKeys: Set<String>, timeout: Duration) -> Result<FetchOutcome, FetchProtocolError> {
        if let error = result.spawnError {
            return .failure(FetchProtocolError("the fetch helper could not start: \(error)"))
        }
        if result.timedOut {
            return .failure(FetchProtocolError("no answer within \(timeout.components.seconds + 2) s; the fetch helper was killed"))
        }
        switch result.status {
        case .exited(0)?:
            break
        case .signaled(let signal, _)?:
            // SIGTERM is what berth's own shutdown sends everyone left.
            return .failure(FetchProtocolError("the fetch helper was killed by \(Signals.name(of: signal))\(signal == SIGTERM ? " (berth is stopping)" : "")"))
        default:
            let why = String(decoding: result.standardError.prefix(400), as: UTF8.self).split(separator: "\n").first.map { ": " + FetchLines.printable(String($0)) } ?? ""
            return .failure(FetchProtocolError("the fetch helper ended with status \(result.status?.shellExitCode ?? -1)\(why)"))
        }
        guard result.droppedBytes == 0 else {
            return .failure(FetchProtocolError("the fetch helper answered more than \(FetchLines.limit) bytes"))
        }
        return FetchOutcome.parse(result.standardOutput, answerKeys: answerKeys).mapError {
            FetchProtocolError("the fetch helper answered out of protocol (\($0.message))")
        }
    }

    // MARK: the helper's side, in `berth fetch VERB`

    /// berth blocks every signal before main (for PID 1's signalfd); the
    /// helper wants the defaults back, so that the SIGTERM berth sends
    /// everyone left at shutdown ends it at once, not after the grace.
    public static func restoreDefaultSignals() {
        var none = sigset_t()
        sigemptyset(&none)
        pthread_sigmask(SIG_SETMASK, &none, nil)
    }

    /// The request from stdin: `keys` plus timeout-ms, parsed as strictly
    /// as PID 1 parses the answer.
    public static func readRequest(keys: Set<String>) -> Result<(values: [String: String], timeout: Duration), FetchProtocolError> {
        var bytes = readAll(STDIN_FILENO, limit: FetchLines.limit + 1) ?? []
        defer { for index in bytes.indices { bytes[index] = 0 } }
        switch FetchLines.parse(bytes, keys: keys.union(["timeout-ms"])) {
        case .failure(let error):
            return .failure(FetchProtocolError("stdin: \(error.message)"))
        case .success(let values):
            guard let text = values["timeout-ms"], let milliseconds = Int(text), (1...3_600_000).contains(milliseconds) else {
                return .failure(FetchProtocolError("stdin: no timeout-ms from 1 to 3600000"))
            }
            guard let url = values["url"], url.hasPrefix("https://") || url.hasPrefix("http://") else {
                return .failure(FetchProtocolError("stdin: no http(s) url"))
            }
            return .success((values, .milliseconds(milliseconds)))
        }
    }

    /// Writes the answer on stdout; the helper's exit status.
    public static func answer(_ outcome: FetchOutcome) -> Int32 {
        let bytes = FetchLines.render(outcome.pairs)
        var written = 0
        while written < bytes.count {
            guard let count = try? retryingOnInterrupt({ bytes[written...].withUnsafeBytes { write(STDOUT_FILENO, $0.baseAddress, $0.count) } }),
                  count > 0 else { return 1 }
            written += count
        }
        return 0
    }

    /// libcurl's message for a request that got no answer, with the URL
    /// (should libcurl quote it) redacted.
    public static func transport(_ message: String, url: String) -> FetchOutcome {
        .transport(message: message.replacing(url, with: redactedURL(url)))
    }

    /// Refusing its input: one line on stderr, which PID 1 shows.
    public static func refuse(_ error: FetchProtocolError) -> Int32 {
        StandardError.write("berth fetch: \(error.message)\n")
        return 2
    }
}
