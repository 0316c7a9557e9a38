import Foundation
import Glibc
import TestSupport
import XCTest

/// sd_notify to an outer manager and entries to journald, through the real
/// libsystemd that berth loads, received on datagram sockets the test binds
/// where the manager and journald would.
final class SystemdTests: XCTestCase {
    final class DatagramListener {
        let fd: Int32
        let path: String

        init(path: String) throws {
            self.path = path
            unlink(path)
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { raw in for (index, byte) in path.utf8.enumerated() { raw[index] = byte } }
            let rc = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
            guard rc == 0 else { throw TestFailure("bind \(path): \(errno)") }
            chmod(path, 0o666)
        }

        deinit {
            close(fd)
            unlink(path)
        }

        /// Datagrams until `enough` says so or `seconds` pass.
        func receive(for seconds: Double, until enough: ([String]) -> Bool) -> [String] {
            var messages: [String] = []
            let deadline = now() + seconds
            var buffer = [UInt8](repeating: 0, count: 65536)
            while now() < deadline, !enough(messages) {
                var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&poller, 1, 100) > 0 else { continue }
                let count = recv(fd, &buffer, buffer.count, 0)
                if count > 0 { messages.append(String(decoding: buffer[0..<count], as: UTF8.self)) }
            }
            return messages
        }
    }

    func test_an_outer_manager_hears_ready_then_stopping_and_the_command_never_sees_its_socket() throws {
        let listener = try DatagramListener(path: "/tmp/berth-notify-\(getpid())")
        let run = try Subprocess(asPID1(["--", "/bin/sh", "-c", "echo \"socket=[$NOTIFY_SOCKET]\"; sleep 0.2"]),
                                 environment: ["PATH": "/usr/bin:/bin", "NOTIFY_SOCKET": listener.path])
        let messages = listener.receive(for: 10) { $0.contains { $0.contains("STOPPING=1") } }
        XCTAssertEqual(run.wait(timeout: 10), .exited(0), run.errorText)
        let ready = try XCTUnwrap(messages.firstIndex { $0.hasPrefix("READY=1") }, "\(messages)")
        let stopping = try XCTUnwrap(messages.firstIndex { $0.contains("STOPPING=1") }, "\(messages)")
        XCTAssertLessThan(ready, stopping)
        XCTAssertTrue(messages[ready].contains("STATUS=running /bin/sh"), messages[ready])
        XCTAssertEqual(run.outputText, "socket=[]\n")
    }

    func test_without_notify_socket_berth_sends_nothing_and_loads_no_libsystemd() throws {
        let run = try Subprocess(asPID1(["--", "/bin/sh", "-c", "grep -c libsystemd /proc/1/maps || true"]), environment: ["PATH": "/usr/bin:/bin"])
        XCTAssertEqual(run.wait(timeout: 10), .exited(0))
        XCTAssertEqual(run.outputText, "0\n", "libsystemd is not mapped into PID 1")
    }

    func test_service_lines_reach_the_journal_as_structured_entries() throws {
        let root = try ThrowawayRoot(tools: ["/usr/lib/x86_64-linux-gnu/libsystemd.so.0"])
        XCTAssertEqual(system("mkdir -p '\(root.path)/run/systemd/journal' '\(root.path)/etc/berth/services.d'"), 0)
        try root.write("/etc/berth/services.d/greeter.toml", "command = [\"/bin/sh\", \"-c\", \"echo hello journal; echo oops >&2; exec /testkit print-signals 15 30\"]\n")
        let journal = try DatagramListener(path: root.path + "/run/systemd/journal/socket")
        let run = try root.berth([], environment: ["PATH": "/usr/bin:/bin"])
        let entries = journal.receive(for: 10) { $0.count >= 3 }
        if let berth = childOf(run.pid) { kill(berth, SIGTERM) }
        XCTAssertEqual(run.wait(timeout: 10), .exited(0), run.errorText)
        let hello = try XCTUnwrap(entries.first { $0.contains("MESSAGE=hello journal\n") }, "\(entries)")
        XCTAssertTrue(hello.contains("SYSLOG_IDENTIFIER=greeter\n") && hello.contains("PRIORITY=6\n") && hello.contains("BERTH_SERVICE=greeter"), hello)
        let oops = try XCTUnwrap(entries.first { $0.contains("MESSAGE=oops\n") }, "\(entries)")
        XCTAssertTrue(oops.contains("PRIORITY=4\n"), oops)
        XCTAssertTrue(run.outputText.contains("greeter | hello journal\n"), "docker logs still get every line")
    }
}
