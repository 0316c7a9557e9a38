import BerthCore
import Glibc

/// moto's S3 on a free loopback port with its signature checks on (moto is
/// installed into .build/python-venv by scripts/install-dependencies): an
/// IAM user allowed S3, its access key, and a bucket made with that key.
/// Without moto the test fails, naming the installer: a skip would leave a
/// green suite whose S3 copies never ran. Killed when this object goes.
public final class SignedMoto {
    public let url: String
    public let port: Int
    public let keyID: String
    public let secret: String
    private let server: Subprocess

    /// The Python that has moto: the package's virtual environment, else
    /// python3 on the runner's PATH.
    public static var python: [String] {
        let venv = packageRoot + ".build/python-venv/bin/python3"
        return access(venv, X_OK) == 0 ? [venv] : ["/usr/bin/env", "python3"]
    }
    static let packageRoot = String(#filePath.dropLast("Tests/Support/SignedMoto.swift".count))
    public static var runnerPath: String { getenv("PATH").map { String(cString: $0) } ?? "/usr/bin:/bin" }

    /// `python -c code arguments`, to its end.
    public static func script(_ code: String, _ arguments: [String] = []) throws -> Subprocess {
        let run = try Subprocess(python + ["-c", code] + arguments, environment: ["PATH": runnerPath, "HOME": "/tmp"])
        run.wait(timeout: 60)
        return run
    }

    public init(bucket: String) throws {
        let probe = try Self.script("import moto.server, flask, boto3")
        guard probe.status == .exited(0) else {
            let reason = probe.errorText.split(separator: "\n").last.map(String.init) ?? String(describing: probe.status)
            throw TestFailure("moto[server] cannot be imported by \(Self.python.joined(separator: " ")) (run scripts/install-dependencies): \(reason)")
        }
        var started: (Subprocess, Int)?
        for _ in 0..<3 where started == nil {
            let port = Int.random(in: 30_000..<40_000)
            // Unsigned: the four set-up calls below (the IAM user, its key,
            // its policy, the bucket); every later request is checked.
            // Its request log to /dev/null: a pipe nobody reads would fill
            // and stall moto mid-request.
            let server = try Subprocess(["/bin/sh", "-c", "exec \"$@\" >/dev/null 2>&1", "moto"] + Self.python + ["-m", "moto.server", "-H", "127.0.0.1", "-p", String(port)],
                                        environment: ["PATH": Self.runnerPath, "HOME": "/tmp", "INITIAL_NO_AUTH_ACTION_COUNT": "4"])
            let deadline = now() + 20
            while now() < deadline && started == nil {
                if Self.listening(port) { started = (server, port) } else { usleep(200_000) }
            }
            if started == nil { server.signal(SIGKILL); server.wait(timeout: 5) }
        }
        guard let (server, port) = started else { throw TestFailure("moto did not start") }
        self.server = server
        self.port = port
        url = "http://127.0.0.1:\(port)"
        let setup = try Subprocess(Self.python + [Self.packageRoot + "Tests/Fixtures/moto_s3_user.py", url, bucket],
                                   environment: ["PATH": Self.runnerPath, "HOME": "/tmp"])
        setup.wait(timeout: 60)
        let words = setup.outputText.split(separator: " ").map { $0.trimmingWhitespace() }
        guard setup.status == .exited(0), words.count == 2 else {
            server.signal(SIGKILL)
            server.wait(timeout: 5)
            throw TestFailure("moto setup: \(setup.errorText)")
        }
        keyID = words[0]
        secret = words[1]
    }

    deinit {
        server.signal(SIGKILL)
        server.wait(timeout: 5)
    }

    /// Whether something accepts connections on 127.0.0.1:`port`.
    static func listening(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}
