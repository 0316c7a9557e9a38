import BerthCore
import CBerth
import CTestSupport
import Glibc

/// Runs programs for the integration tests without signals or threads:
/// poll() on pipes and waitpid(pid, WNOHANG), every wait bounded by a deadline.
public final class Subprocess {
    public let pid: pid_t
    private var outputFD: Int32
    private var errorFD: Int32
    public private(set) var output: [UInt8] = []
    public private(set) var errorOutput: [UInt8] = []
    private var consumed = 0
    public private(set) var status: ChildStatus?
    private static let devNull = open("/dev/null", O_RDONLY | O_CLOEXEC)

    static func isProvisioningInput(_ name: String) -> Bool {
        ["SSH_", "GITHUB_", "GH_", "GIT_", "ANTHROPIC_", "OPENAI_", "GEMINI_", "GOOGLE_", "CODE_SERVER_", "SUPERVISOR_"]
            .contains { name.hasPrefix($0) } || name.hasPrefix("BERTH_")
    }

    /// `terminal`: run in a new session whose controlling terminal is that pty.
    public init(_ arguments: [String], environment: [String: String]? = nil, workingDirectory: String? = nil,
                terminal: PseudoTerminal? = nil, input: Int32 = -1) throws {
        var request = SpawnRequest(arguments: arguments)
        request.workingDirectory = workingDirectory
        // Never the test runner's own provisioning inputs: berth runs on
        // this machine in some tests and must find nothing to provision.
        let chosen = environment ?? currentEnvironment().filter { !Subprocess.isProvisioningInput($0.key) }
        request.environment = chosen.map { "\($0.key)=\($0.value)" }
        var outPipe: [Int32] = [-1, -1]
        var errPipe: [Int32] = [-1, -1]
        if let terminal {
            request.isolation = .newSession
            request.takeTerminal = true
            request.standardInput = terminal.replica
            request.standardOutput = terminal.replica
            request.standardError = terminal.replica
        } else {
            request.isolation = .newProcessGroup
            guard berth_pipe_cloexec(&outPipe) == 0, berth_pipe_cloexec(&errPipe) == 0 else {
                throw TestFailure("pipe: \(errno)")
            }
            request.standardOutput = outPipe[1]
            request.standardError = errPipe[1]
            request.standardInput = input >= 0 ? input : Subprocess.devNull
        }
        do {
            pid = try Spawner.spawn(request)
        } catch {
            throw TestFailure("spawn \(arguments): \(error)")
        }
        if terminal == nil {
            close(outPipe[1])
            close(errPipe[1])
            outputFD = outPipe[0]
            errorFD = errPipe[0]
        } else {
            outputFD = -1
            errorFD = -1
        }
    }

    deinit {
        if status == nil {
            kill(-pid, SIGKILL)
            kill(pid, SIGKILL)
            var raw: Int32 = 0
            waitpid(pid, &raw, 0)
        }
        if outputFD >= 0 { close(outputFD) }
        if errorFD >= 0 { close(errorFD) }
    }

    public var outputText: String { String(decoding: output, as: UTF8.self) }
    public var errorText: String { String(decoding: errorOutput, as: UTF8.self) }

    public func signal(_ number: Int32) {
        kill(pid, number)
    }

    /// Next complete stdout line, or nil if none arrives in time.
    public func readLine(timeout: Double = 10) -> String? {
        let deadline = now() + timeout
        while true {
            if let newline = output[consumed...].firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: output[consumed..<newline], as: UTF8.self)
                consumed = newline + 1
                return line
            }
            let left = deadline - now()
            if left <= 0 || (outputFD < 0 && errorFD < 0) { return nil }
            pump(timeout: min(left, 0.05))
        }
    }

    /// Waits for exit (collecting output); kills the group on timeout.
    @discardableResult
    public func wait(timeout: Double = 30) -> ChildStatus {
        let deadline = now() + timeout
        while status == nil {
            var raw: Int32 = 0
            let got = waitpid(pid, &raw, WNOHANG)
            if got == pid {
                let change = ChildStatus(waitStatus: raw)
                if change.isTermination { status = change }
                continue
            }
            if now() > deadline {
                kill(-pid, SIGKILL)
                kill(pid, SIGKILL)
                waitpid(pid, &raw, 0)
                status = .signaled(SIGKILL, coreDumped: false)
                break
            }
            pump(timeout: 0.01)
        }
        // Whatever is left in the pipes, without waiting on grandchildren.
        drainAvailable()
        return status!
    }

    /// The status if the process ends within `seconds` (collecting output),
    /// else nil and it keeps running: to assert that something stays up,
    /// which `status` (set only by `wait`) cannot tell.
    public func exitStatus(within seconds: Double) -> ChildStatus? {
        let deadline = now() + seconds
        while status == nil {
            var raw: Int32 = 0
            if waitpid(pid, &raw, WNOHANG) == pid {
                let change = ChildStatus(waitStatus: raw)
                if change.isTermination { status = change }
                continue
            }
            if now() > deadline { return nil }
            pump(timeout: 0.01)
        }
        drainAvailable()
        return status
    }

    private func drainAvailable() {
        for _ in 0..<1000 where outputFD >= 0 || errorFD >= 0 {
            if !pump(timeout: 0) { break }
        }
    }

    /// Reads what is ready; false when nothing was.
    @discardableResult
    private func pump(timeout: Double) -> Bool {
        var fds: [pollfd] = []
        if outputFD >= 0 { fds.append(pollfd(fd: outputFD, events: Int16(POLLIN), revents: 0)) }
        if errorFD >= 0 { fds.append(pollfd(fd: errorFD, events: Int16(POLLIN), revents: 0)) }
        guard !fds.isEmpty else {
            if timeout > 0 { usleep(UInt32(timeout * 1e6)) }
            return false
        }
        let ready = poll(&fds, nfds_t(fds.count), Int32(timeout * 1000))
        guard ready > 0 else { return false }
        var buffer = [UInt8](repeating: 0, count: 65536)
        for entry in fds where entry.revents != 0 {
            let got = read(entry.fd, &buffer, buffer.count)
            if got > 0 {
                if entry.fd == outputFD { output += buffer[0..<got] } else { errorOutput += buffer[0..<got] }
            } else if got == 0 || (errno != EINTR && errno != EAGAIN) {
                close(entry.fd)
                if entry.fd == outputFD { outputFD = -1 } else { errorFD = -1 }
            }
        }
        return true
    }
}

/// A pty pair; the test reads and writes the primary side.
public final class PseudoTerminal {
    public let primary: Int32
    public let replica: Int32
    private var buffer: [UInt8] = []

    public init() throws {
        var fds: (Int32, Int32) = (-1, -1)
        guard ctest_open_pty(&fds.0, &fds.1) == 0 else { throw TestFailure("no pty: \(errno)") }
        (primary, replica) = fds
    }

    deinit {
        close(primary)
        if replica >= 0 { close(replica) }
    }

    public func write(_ text: String) {
        var bytes = Array(text.utf8)
        _ = Glibc.write(primary, &bytes, bytes.count)
    }

    /// Reads until `needle` shows up in the output (returns everything read
    /// so far), or nil on timeout.
    public func read(until needle: String, timeout: Double = 10) -> String? {
        let deadline = now() + timeout
        while true {
            if let end = endOfFirstMatch(Array(needle.utf8), in: buffer) {
                let found = String(decoding: buffer[..<end], as: UTF8.self)
                buffer.removeFirst(end)
                return found
            }
            let left = deadline - now()
            if left <= 0 { return nil }
            var entry = pollfd(fd: primary, events: Int16(POLLIN), revents: 0)
            guard poll(&entry, 1, Int32(min(left, 0.05) * 1000)) > 0 else { continue }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let got = Glibc.read(primary, &chunk, chunk.count)
            if got <= 0 { return nil }
            buffer += chunk[0..<got]
        }
    }
}

func endOfFirstMatch(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
    guard !needle.isEmpty, haystack.count >= needle.count else { return nil }
    for start in 0...(haystack.count - needle.count) where haystack[start..<(start + needle.count)].elementsEqual(needle) {
        return start + needle.count
    }
    return nil
}

public struct TestFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

public func now() -> Double {
    Double(MonotonicClock.now()) / 1e9
}

/// Paths of the built products, next to the test bundle.
public enum Built {
    public static var directory: String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        let exe = String(decoding: buffer[0..<max(0, length)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return String(exe[..<(exe.lastIndex(of: "/") ?? exe.endIndex)])
    }
    /// BERTH_TEST_BINARY points the tests at another build (the release one).
    public static var berth: String {
        if let chosen = getenv("BERTH_TEST_BINARY") { return String(cString: chosen) }
        return directory + "/berth"
    }
    public static var testkit: String { directory + "/berth-testkit" }
    public static var workspaceSupervisor: String { directory + "/workspace-supervisor" }
}

/// `unshare` as root gives a fresh PID namespace in which berth is PID 1.
public func asPID1(_ arguments: [String]) -> [String] {
    ["unshare", "--pid", "--fork", "--mount-proc", Built.berth] + arguments
}

/// Host pid of the process that `unshare --fork` started (berth as PID 1).
/// Polls `condition` every 50 ms for at most `seconds`; its last answer.
public func eventually(_ seconds: Double = 10, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = now() + seconds
    while now() < deadline {
        if try condition() { return true }
        usleep(50_000)
    }
    return try condition()
}

public func childOf(_ parent: pid_t, timeout: Double = 5) -> pid_t? {
    let deadline = now() + timeout
    while now() < deadline {
        if let text = readText("/proc/\(parent)/task/\(parent)/children"),
           let first = text.split(separator: " ").first, let pid = pid_t(first) {
            return pid
        }
        usleep(5000)
    }
    return nil
}

/// A small text file (from /proc or /tmp), or nil when it cannot be read.
public func readText(_ path: String) -> String? {
    readFile(path).map { String(decoding: $0, as: UTF8.self) }
}

/// A directory holding `tini` and `dumb-init` symlinks to the built berth,
/// the way an image installs the compatibility names.
public enum CompatibilityNames {
    public static let directory: String = {
        // Beside the build products, so runs reuse it instead of littering /tmp.
        let path = Built.directory + "/compat-names"
        mkdir(path, 0o755)
        for name in ["tini", "dumb-init"] {
            unlink(path + "/" + name)
            symlink(Built.berth, path + "/" + name)
        }
        return path
    }()
    public static var tini: String { directory + "/tini" }
    public static var dumbInit: String { directory + "/dumb-init" }
}

extension Subprocess {
    /// `key=value` lines of the output, for the probes' reports.
    public var report: [String: String] {
        var values: [String: String] = [:]
        for line in outputText.split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            values[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        return values
    }
}

extension Built {
    public static var coreProbe: String { directory + "/berth-core-probe" }
}
