import BerthCore
import CBerth
import Glibc
import SystemPackage

/// One attempt at "does 127.0.0.1:port accept a connection?", on the loop:
/// a non-blocking connect, answered when the socket turns writable.
func probeTCP(port: Int, loop: EventLoop, timeout: Duration, done: @escaping (Bool) -> Void) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { return done(false) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = in_addr_t(UInt32(0x7f00_0001).bigEndian)
    let rc = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    if rc == 0 {
        close(fd)
        return done(true)
    }
    guard errno == EINPROGRESS else {
        close(fd)
        return done(false)
    }
    var finished = false
    let timer = loop.schedule(after: timeout) {
        guard !finished else { return }
        finished = true
        loop.unwatch(fd)
        close(fd)
        done(false)
    }
    do {
        try loop.watch(fd, events: .writable) { _ in
            guard !finished else { return }
            finished = true
            loop.cancel(timer)
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
            loop.unwatch(fd)
            close(fd)
            done(error == 0)
        }
    } catch {
        finished = true
        loop.cancel(timer)
        close(fd)
        done(false)
    }
}

/// The sd_notify protocol from a service to berth: a datagram socket the
/// service finds in NOTIFY_SOCKET, one per service (so a message's socket
/// says who sent it), writable only by root and the service's user.
final class NotifySocket {
    let path: String
    let fd: FileDescriptor
    var onMessage: ([String: String]) -> Void = { _ in }
    private weak var loop: EventLoop?

    init(path: String, owner: uid_t?, loop: EventLoop) throws(Errno) {
        unlink(path)
        let fd = try retryingOnInterrupt { socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        guard let rc = withUnixSocketAddress(path, { bind(fd, $0, $1) }) else {
            close(fd)
            throw Errno.fileNameTooLong
        }
        guard rc == 0 else {
            let failure = errno
            close(fd)
            throw Errno(rawValue: failure)
        }
        if let owner { _ = chown(path, owner, gid_t(bitPattern: -1)) }
        _ = chmod(path, 0o600)
        self.fd = FileDescriptor(rawValue: fd)
        self.path = path
        self.loop = loop
        try loop.watch(self.fd, events: .readable) { [unowned self] _ in receive() }
    }

    deinit {
        loop?.unwatch(fd)
        try? fd.close()
        unlink(path)
    }

    /// At most this many datagrams per wake-up: a service flooding its
    /// socket gets its turn like a flooding pipe, and the loop goes back to
    /// signals in between (the socket is level-triggered: the rest wakes it
    /// again).
    static let datagramsPerWakeUp = 64

    /// KEY=VALUE lines, found with memchr: a flood of datagrams must cost
    /// the loop little per byte.
    static func fields(in message: UnsafeRawBufferPointer) -> [String: String] {
        var fields: [String: String] = [:]
        guard let base = message.baseAddress else { return fields }
        func text(_ from: Int, _ to: Int) -> String {
            String(decoding: UnsafeBufferPointer(start: (base + from).assumingMemoryBound(to: UInt8.self), count: to - from), as: UTF8.self)
        }
        var start = 0
        while start < message.count {
            let end = memchr(base + start, Int32(UInt8(ascii: "\n")), message.count - start).map { base.distance(to: UnsafeRawPointer($0)) } ?? message.count
            if let equals = memchr(base + start, Int32(UInt8(ascii: "=")), end - start).map({ base.distance(to: UnsafeRawPointer($0)) }) {
                fields[text(start, equals)] = text(equals + 1, end)
            }
            start = end + 1
        }
        return fields
    }

    private func receive() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        for _ in 0..<Self.datagramsPerWakeUp {
            let count = recv(fd.rawValue, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            guard count > 0 else { return }
            onMessage(buffer.withUnsafeBytes { Self.fields(in: UnsafeRawBufferPointer(rebasing: $0[0..<count])) })
        }
    }
}
