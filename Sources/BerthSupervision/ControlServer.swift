import BerthCore
import CBerth
import Glibc
import SystemPackage

/// berth's control socket: a UNIX stream socket under the run directory
/// (mode 0660, group of the workspace user) taking one request line per
/// connection and answering with text, then closing. Peers are checked
/// again with SO_PEERCRED: root, berth's own user and the workspace user
/// only; the handler gets the peer's uid for the per-service rules. Every
/// read and write is non-blocking on the loop; a client that stalls is
/// dropped after two seconds.
public final class ControlServer {
    /// `peer`: the uid of the connected process, from SO_PEERCRED.
    public typealias Handler = (_ request: String, _ peer: uid_t) -> (text: String, ok: Bool)
    let path: String
    let fd: FileDescriptor
    let loop: EventLoop
    let allowed: Set<uid_t>
    let handler: Handler

    public init(path: String, group: gid_t?, allowedUsers: Set<uid_t>, loop: EventLoop, handler: @escaping Handler) throws(Errno) {
        unlink(path)
        let fd = try retryingOnInterrupt { socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        // Created 0600 and widened once the group is right: never a moment
        // when others could connect.
        let previous = umask(0o177)
        let bound = withUnixSocketAddress(path) { bind(fd, $0, $1) }
        umask(previous)
        guard let bound else {
            close(fd)
            throw Errno.fileNameTooLong
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            let failure = errno
            close(fd)
            throw Errno(rawValue: failure)
        }
        if let group, chown(path, uid_t(bitPattern: -1), group) == 0 { chmod(path, 0o660) }
        self.path = path
        self.fd = FileDescriptor(rawValue: fd)
        self.loop = loop
        self.allowed = allowedUsers.union([0, getuid()])
        self.handler = handler
        try loop.watch(self.fd, events: .readable) { [unowned self] _ in acceptSome() }
    }

    deinit {
        loop.unwatch(fd)
        try? fd.close()
        unlink(path)
    }

    /// Bounded per wake-up, like every other read on the loop: a local
    /// process connecting in a tight loop cannot keep berth from its
    /// signals (the listening socket is level-triggered: the rest wakes it
    /// again).
    private func acceptSome() {
        for _ in 0..<16 {
            let client = berth_accept_nonblocking(fd.rawValue)
            guard client >= 0 else { return }
            var peer: uid_t = 0
            guard berth_peer_uid(client, &peer) == 0, allowed.contains(peer) else {
                close(client)
                continue
            }
            ControlConnection(fd: FileDescriptor(rawValue: client), peer: peer, loop: loop, handler: handler).start()
        }
    }
}

private final class ControlConnection {
    let fd: FileDescriptor
    let peer: uid_t
    let loop: EventLoop
    let handler: ControlServer.Handler
    var request: [UInt8] = []
    var response: [UInt8] = []
    var sent = 0
    var timer: EventLoop.TimerID?
    var keepAlive: ControlConnection?

    init(fd: FileDescriptor, peer: uid_t, loop: EventLoop, handler: @escaping ControlServer.Handler) {
        self.fd = fd
        self.peer = peer
        self.loop = loop
        self.handler = handler
    }

    func start() {
        keepAlive = self
        timer = loop.schedule(after: .seconds(2)) { [unowned self] in finish() }
        do {
            try loop.watch(fd, events: .readable) { [unowned self] _ in readRequest() }
        } catch {
            finish()
        }
    }

    private func readRequest() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count: Int
        do {
            count = try buffer.withUnsafeMutableBytes { try fd.read(into: $0) }
        } catch Errno.wouldBlock {
            return
        } catch {
            return finish()
        }
        guard count > 0 else { return finish() }
        request.append(contentsOf: buffer[0..<count])
        guard let newline = request.firstIndex(of: UInt8(ascii: "\n")) else {
            if request.count > 4096 { finish() }
            return
        }
        let line = String(decoding: request[..<newline], as: UTF8.self)
        let answer = handler(line, peer)
        // First line: "ok" or "error", then the text.
        response = Array(((answer.ok ? "ok\n" : "error\n") + answer.text).utf8)
        loop.unwatch(fd)
        do {
            try loop.watch(fd, events: .writable) { [unowned self] _ in writeResponse() }
        } catch {
            finish()
        }
    }

    private func writeResponse() {
        while sent < response.count {
            do {
                let count = try response[sent...].withUnsafeBytes { try fd.write($0) }
                guard count > 0 else { break }
                sent += count
            } catch Errno.wouldBlock {
                return
            } catch {
                break
            }
        }
        finish()
    }

    private func finish() {
        guard keepAlive != nil else { return }
        if let timer { loop.cancel(timer) }
        loop.unwatch(fd)
        try? fd.close()
        keepAlive = nil
    }
}
