import BerthCore
import CBerth
import Glibc

/// A request as the server hands it over: method, path (query split off),
/// lower-cased header names, and the body (Content-Length only).
public struct HTTPServerRequest: Sendable {
    public let method: String
    public let path: String
    public let query: String
    public let headers: [String: String]
    public let body: [UInt8]
}

public struct HTTPServerResponse: Sendable {
    public var status: Int
    public var contentType: String
    public var body: [UInt8]

    public init(status: Int, contentType: String = "text/plain; charset=utf-8", body: String) {
        self.status = status
        self.contentType = contentType
        self.body = Array(body.utf8)
    }
}

/// A small HTTP/1.1 server on the event loop for local status APIs: one
/// request per connection (answered with `Connection: close`), every read
/// and write non-blocking, bounded in size (16 KiB of head, 64 KiB of body),
/// number (64 connections) and time (5 s per connection). When every slot
/// is taken, the connection idle longest without a whole request makes
/// room: one slow client cannot hold the API (slowloris).
public final class HTTPServer {
    public typealias Handler = (HTTPServerRequest) -> HTTPServerResponse
    public let port: Int
    let fd: Int32
    let loop: EventLoop
    let handler: Handler
    /// Connections still reading their request, and those being answered.
    fileprivate var connections: [ObjectIdentifier: HTTPConnection] = [:]
    static let maximumConnections = 64

    public struct AddressError: Error, CustomStringConvertible {
        public let description: String
    }

    /// `address`: HOST:PORT, [IPv6]:PORT or :PORT (every interface); port 0
    /// picks a free one (`port` tells which).
    public init(address: String, loop: EventLoop, handler: @escaping Handler) throws(AddressError) {
        guard let (host, port) = Self.split(address) else {
            throw AddressError(description: "'\(address)': expected HOST:PORT, like 127.0.0.1:9000")
        }
        var storage = sockaddr_storage()
        var length: socklen_t
        let family: Int32
        if host.contains(":") {
            family = AF_INET6
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = in_port_t(UInt16(port).bigEndian)
            guard inet_pton(AF_INET6, host, &address.sin6_addr) == 1 else {
                throw AddressError(description: "'\(host)' is not an IPv6 address")
            }
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: address, as: sockaddr_in6.self) }
        } else {
            family = AF_INET
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            guard inet_pton(AF_INET, host.isEmpty ? "0.0.0.0" : host, &address.sin_addr) == 1 else {
                throw AddressError(description: "'\(host)' is not an IPv4 address (names are not looked up)")
            }
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: address, as: sockaddr_in.self) }
        }
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw AddressError(description: "socket: \(String(cString: strerror(errno)))") }
        var on: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        let bound = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard bound == 0, listen(fd, 64) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw AddressError(description: "'\(address)': cannot listen: \(reason)")
        }
        _ = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        let boundPort = withUnsafeBytes(of: storage) { bytes in
            family == AF_INET6 ? bytes.load(as: sockaddr_in6.self).sin6_port : bytes.load(as: sockaddr_in.self).sin_port
        }
        self.port = Int(UInt16(bigEndian: boundPort))
        self.fd = fd
        self.loop = loop
        self.handler = handler
        do {
            try loop.watch(fd, events: .readable) { [unowned self] _ in acceptAll() }
        } catch {
            close(fd)
            throw AddressError(description: "cannot watch the listening socket: \(error)")
        }
    }

    deinit {
        loop.unwatch(fd)
        close(fd)
    }

    static func split(_ address: String) -> (String, Int)? {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]), (0...65535).contains(port) else {
            return nil
        }
        var host = String(address[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host, port)
    }

    private func acceptAll() {
        while true {
            let client = berth_accept_nonblocking(fd)
            guard client >= 0 else { return }
            if connections.count >= Self.maximumConnections {
                let reading = connections.values.filter { !$0.answering }
                guard let idlest = reading.min(by: { $0.lastProgress < $1.lastProgress }) else {
                    close(client)
                    continue
                }
                idlest.finish()
            }
            let connection = HTTPConnection(fd: client, server: self)
            connections[ObjectIdentifier(connection)] = connection
            connection.start()
        }
    }

    fileprivate func closed(_ connection: HTTPConnection) { connections[ObjectIdentifier(connection)] = nil }
}

private final class HTTPConnection {
    let fd: Int32
    unowned let server: HTTPServer
    var received: [UInt8] = []
    var response: [UInt8] = []
    var sent = 0
    var timer: EventLoop.TimerID?
    /// Where the search for the end of the head resumes: each byte is
    /// looked at once, however the request is split into reads.
    var scanned = 0
    /// When bytes last arrived (monotonic ns): the idlest goes first.
    var lastProgress = MonotonicClock.now()
    /// The request is whole; the response is being written.
    var answering = false
    static let headLimit = 16 << 10
    static let bodyLimit = 64 << 10

    init(fd: Int32, server: HTTPServer) {
        self.fd = fd
        self.server = server
    }

    func start() {
        timer = server.loop.schedule(after: .seconds(5)) { [unowned self] in finish() }
        do {
            try server.loop.watch(fd, events: .readable) { [unowned self] _ in readRequest() }
        } catch {
            finish()
        }
    }

    private func readRequest() {
        var buffer = [UInt8](repeating: 0, count: 8192)
        while true {
            // The target has no swift-system of its own, hence not FileDescriptor.read.
            let count: Int
            do {
                count = try retryingOnInterrupt { read(fd, &buffer, buffer.count) }
            } catch where error.rawValue == EAGAIN {
                break
            } catch {
                return finish()
            }
            guard count > 0 else { return finish() }
            received.append(contentsOf: buffer[0..<count])
            lastProgress = MonotonicClock.now()
            if received.count > Self.headLimit + Self.bodyLimit { return answer(HTTPServerResponse(status: 413, body: "request too large\n")) }
        }
        guard let end = headEnd() else {
            if received.count > Self.headLimit { answer(HTTPServerResponse(status: 431, body: "request head too large\n")) }
            return
        }
        guard end <= Self.headLimit else { return answer(HTTPServerResponse(status: 431, body: "request head too large\n")) }
        let head = String(decoding: received[..<end], as: UTF8.self)
        var lines = head.split(separator: "\r\n", omittingEmptySubsequences: false).map(String.init)
        let requestLine = lines.removeFirst().split(separator: " ").map(String.init)
        guard requestLine.count == 3, requestLine[2].hasPrefix("HTTP/1.") else {
            return answer(HTTPServerResponse(status: 400, body: "bad request line\n"))
        }
        var headers: [String: String] = [:]
        for line in lines where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { return answer(HTTPServerResponse(status: 400, body: "bad header\n")) }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingWhitespace()
        }
        if headers["transfer-encoding"] != nil { return answer(HTTPServerResponse(status: 411, body: "send Content-Length\n")) }
        let length = Int(headers["content-length"] ?? "0") ?? -1
        guard (0...Self.bodyLimit).contains(length) else { return answer(HTTPServerResponse(status: 413, body: "body too large\n")) }
        let bodyStart = end + 4
        guard received.count >= bodyStart + length else { return }
        let target = requestLine[1]
        let question = target.firstIndex(of: "?")
        let request = HTTPServerRequest(method: requestLine[0], path: String(target[..<(question ?? target.endIndex)]),
                                        query: question.map { String(target[target.index(after: $0)...]) } ?? "",
                                        headers: headers, body: Array(received[bodyStart..<(bodyStart + length)]))
        answer(server.handler(request), head: request.method == "HEAD")
    }

    private func headEnd() -> Int? {
        guard received.count >= 4 else { return nil }
        // A CRLFCRLF split across reads starts at most 3 bytes back.
        for index in max(0, scanned - 3)...(received.count - 4)
        where received[index] == 13 && received[index + 1] == 10 && received[index + 2] == 13 && received[index + 3] == 10 {
            scanned = index
            return index
        }
        scanned = received.count
        return nil
    }

    private func answer(_ response: HTTPServerResponse, head: Bool = false) {
        let text = "HTTP/1.1 \(response.status) \(Self.reason(response.status))\r\nContent-Type: \(response.contentType)\r\n"
            + "Content-Length: \(response.body.count)\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
        self.response = Array(text.utf8) + (head ? [] : response.body)
        answering = true
        server.loop.unwatch(fd)
        do {
            try server.loop.watch(fd, events: .writable) { [unowned self] _ in writeResponse() }
        } catch {
            finish()
        }
    }

    private func writeResponse() {
        while sent < response.count {
            do {
                let count = try retryingOnInterrupt {
                    response[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                }
                guard count > 0 else { break }
                sent += count
            } catch where error.rawValue == EAGAIN {
                return
            } catch {
                break
            }
        }
        finish()
    }

    /// Idempotent: the server's table holds the connection until then.
    func finish() {
        guard server.connections[ObjectIdentifier(self)] != nil else { return }
        if let timer { server.loop.cancel(timer) }
        server.loop.unwatch(fd)
        close(fd)
        server.closed(self)
    }

    static func reason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 202: "Accepted"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 409: "Conflict"
        case 411: "Length Required"
        case 413: "Content Too Large"
        case 431: "Request Header Fields Too Large"
        case 503: "Service Unavailable"
        default: "Status"
        }
    }
}
