import BerthCore
import CBerthHTTP
import Glibc

/// A request berth makes (GitHub's API, a token endpoint). Headers may hold
/// a token: they go to libcurl in memory, never to a command line.
public struct HTTPRequest: Sendable {
    public var url: String
    public var headers: [String]
    public var body: String?
    public var timeout: Duration
    /// Larger answers are refused: berth only ever expects small JSON.
    public var bodyLimit: Int
    /// Another method than GET/POST (PUT, DELETE).
    public var method: String?
    /// A file sent as the body, read by libcurl as it goes (a PUT).
    public var uploadFile: String?
    /// AWS Signature V4 by libcurl: provider ("aws:amz:REGION:s3") and
    /// "KEY:SECRET", kept in memory only.
    public var awsSigV4: (provider: String, credentials: String)?

    public init(url: String, headers: [String] = [], body: String? = nil, timeout: Duration = .seconds(10), bodyLimit: Int = 1 << 20) {
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
        self.bodyLimit = bodyLimit
    }
}

public struct HTTPResponse: Sendable, Equatable {
    public let status: Int
    public let body: [UInt8]
    public var text: String { String(decoding: body, as: UTF8.self) }
}

/// Why no HTTP answer came: libcurl missing, connection refused, timeout,
/// an oversized answer.
public struct HTTPFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// A request in flight; `cancel()` drops it and its completion never runs.
public final class HTTPExchange {
    fileprivate var pointer: OpaquePointer?
    fileprivate weak var loop: EventLoop?

    fileprivate init() {}

    public func cancel() {
        guard let pointer else { return }
        loop?.unwatch(berth_http_fd(pointer))
        berth_http_release(pointer)
        self.pointer = nil
    }
}

extension EventLoop {
    /// Performs `request` on a worker thread; `completion` runs on the loop
    /// exactly once (unless cancelled). The loop keeps forwarding signals
    /// however long the server takes.
    @discardableResult
    public func fetch(_ request: HTTPRequest, completion: @escaping (Result<HTTPResponse, HTTPFailure>) -> Void) -> HTTPExchange {
        let exchange = HTTPExchange()
        var error = [CChar](repeating: 0, count: 512)
        let milliseconds = max(1, request.timeout.components.seconds * 1000 + request.timeout.components.attoseconds / 1_000_000_000_000_000)
        let extras = [request.method, request.uploadFile, request.awsSigV4?.provider, request.awsSigV4?.credentials]
        let started: OpaquePointer? = withCStrings(request.headers) { headers in
            withOptionalCStrings(extras) { extra in
                var options = berth_http_extras(method: extra[0], upload_path: extra[1], aws_sigv4: extra[2], credentials: extra[3])
                return berth_http_start(request.url, headers.baseAddress, headers.count, request.body, &options, Int(milliseconds), request.bodyLimit,
                                        &error, error.count)
            }
        }
        guard let started else {
            let message = String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            schedule(after: .zero) { completion(.failure(HTTPFailure(message: message))) }
            return exchange
        }
        exchange.pointer = started
        exchange.loop = self
        let fd = berth_http_fd(started)
        do {
            try watch(fd, events: .readable) { [unowned self] _ in
                unwatch(fd)
                guard let pointer = exchange.pointer else { return }
                exchange.pointer = nil
                let result = finishedExchange(pointer)
                berth_http_release(pointer)
                completion(result)
            }
        } catch {
            berth_http_release(started)
            exchange.pointer = nil
            schedule(after: .zero) { completion(.failure(HTTPFailure(message: "cannot watch the request: \(error)"))) }
        }
        return exchange
    }
}

extension HTTPRequest {
    /// Performs the request and waits for its end. Only for a short-lived
    /// process with nothing else to do (berth's fetch helper); an event
    /// loop uses `fetch`, which never waits.
    public func performWaiting() -> Result<HTTPResponse, HTTPFailure> {
        var error = [CChar](repeating: 0, count: 512)
        let milliseconds = max(1, timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        let extras = [method, uploadFile, awsSigV4?.provider, awsSigV4?.credentials]
        let started: OpaquePointer? = withCStrings(headers) { headers in
            withOptionalCStrings(extras) { extra in
                var options = berth_http_extras(method: extra[0], upload_path: extra[1], aws_sigv4: extra[2], credentials: extra[3])
                return berth_http_start(url, headers.baseAddress, headers.count, body, &options, Int(milliseconds), bodyLimit, &error, error.count)
            }
        }
        guard let started else {
            return .failure(HTTPFailure(message: String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)))
        }
        // libcurl's own timeout ends the exchange, so this wait is bounded.
        var ready = pollfd(fd: berth_http_fd(started), events: Int16(POLLIN), revents: 0)
        _ = try? retryingOnInterrupt { poll(&ready, 1, -1) }
        let result = finishedExchange(started)
        berth_http_release(started)
        return result
    }
}

/// The outcome of an exchange whose fd became readable.
private func finishedExchange(_ pointer: OpaquePointer) -> Result<HTTPResponse, HTTPFailure> {
    let status = berth_http_status(pointer)
    if status == 0 {
        return .failure(HTTPFailure(message: String(cString: berth_http_error(pointer))))
    }
    var length = 0
    let body = berth_http_body(pointer, &length).map { Array(UnsafeBufferPointer(start: $0, count: length)) } ?? []
    return .success(HTTPResponse(status: status, body: body))
}

/// Like withCStrings, nil staying nil.
private func withOptionalCStrings<R>(_ strings: [String?], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    let copies = strings.map { $0.map { strdup($0) } ?? nil }
    defer {
        for copy in copies {
            if let copy {
                memset(copy, 0, strlen(copy))
                free(copy)
            }
        }
    }
    return body(copies.map { UnsafePointer($0) })
}

/// NUL-terminated copies of `strings` for the duration of `body`.
private func withCStrings<R>(_ strings: [String], _ body: (UnsafeBufferPointer<UnsafePointer<CChar>?>) -> R) -> R {
    let copies = strings.map { strdup($0) }
    defer {
        for copy in copies {
            if let copy {
                memset(copy, 0, strlen(copy))
                free(copy)
            }
        }
    }
    let pointers = copies.map { UnsafePointer($0) }
    return pointers.withUnsafeBufferPointer(body)
}
