import BerthCore
import BerthProvisioning
import Glibc

/// `berth status [--json]`, `berth logs NAME`, `berth restart|stop|start
/// NAME`: one request to the control socket of the berth running here.
enum ControlClient {
    static let usage = "usage: berth status [--json] | berth logs NAME | berth restart NAME | berth stop NAME | berth start NAME"

    static func run(_ arguments: [String], environment: [String: String]) -> Int32 {
        let valid = switch (arguments.first ?? "", arguments.count) {
        case ("status", 1): true
        case ("status", 2): arguments[1] == "--json"
        case ("logs", 2), ("restart", 2), ("stop", 2), ("start", 2): true
        default: false
        }
        guard valid else {
            StandardError.write("berth: \(usage)\n")
            return 2
        }
        let path = Settings(environment: environment).value("BERTH_RUN_DIR", default: "/run/berth") + "/control.sock"
        switch request(arguments.joined(separator: " "), socket: path) {
        case .failure(let error):
            StandardError.write("berth \(arguments[0]): \(error.message)\n")
            return 1
        case .success(let answer):
            if answer.ok { StandardOutput.write(answer.text) } else { StandardError.write("berth \(arguments[0]): \(answer.text)") }
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
