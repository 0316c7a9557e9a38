import BerthCore
import Glibc

/// `berth status`, `logs`, `restart`, `stop`, `start` and part of `health`:
/// one request over the UNIX socket of the berth running here
/// (BERTH_RUN_DIR/control.sock).
enum ControlClient {
    static func socketPath(environment: [String: String] = currentEnvironment()) -> String {
        Settings(environment: environment).value("BERTH_RUN_DIR", default: "/run/berth") + "/control.sock"
    }

    /// Sends `line`; the answer goes to stdout when berth says ok, else to
    /// stderr after `berth VERB:`. Exit status 0 or 1.
    static func run(_ line: String, verb: String) -> Int32 {
        switch request(line, socket: socketPath()) {
        case .failure(let error):
            StandardError.write("berth \(verb): \(error.message)\n")
            return 1
        case .success(let answer):
            if answer.ok { StandardOutput.write(answer.text) } else { StandardError.write("berth \(verb): \(answer.text)") }
            return answer.ok ? 0 : 1
        }
    }

    /// Sends one line, reads the answer to the end ("ok"/"error", then text).
    static func request(_ line: String, socket path: String) -> Result<(text: String, ok: Bool), ControlError> {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure(ControlError("socket: \(String(cString: strerror(errno)))")) }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard let connected = withUnixSocketAddress(path, { connect(fd, $0, $1) }) else {
            return .failure(ControlError("\(path): path too long"))
        }
        guard connected == 0 else {
            return .failure(ControlError("cannot reach berth at \(path): \(String(cString: strerror(errno))) (is berth supervising services here?)"))
        }
        var request = Array((line + "\n").utf8)
        guard write(fd, &request, request.count) == request.count else {
            return .failure(ControlError("cannot send the request: \(String(cString: strerror(errno)))"))
        }
        guard let answer = readAll(fd, limit: 4 << 20) else {
            return .failure(ControlError("no answer: \(String(cString: strerror(errno)))"))
        }
        let text = String(decoding: answer, as: UTF8.self)
        guard let newline = text.firstIndex(of: "\n") else { return .failure(ControlError("berth closed the connection")) }
        return .success((String(text[text.index(after: newline)...]), text[..<newline] == "ok"))
    }

    struct ControlError: Error {
        let message: String
        init(_ message: String) { self.message = message }
    }
}
