import CBerth
import Glibc
import SystemPackage

/// A short-lived command run on behalf of berth (a provisioning tool, a
/// readiness probe): its output is collected through non-blocking pipes on
/// the loop and its status comes from the loop's reaper, so nothing waits.
public struct HelperCommand: Sendable {
    /// Its environment defaults to `toolEnvironment()`, not berth's.
    public var request: SpawnRequest
    /// Bytes fed to stdin (secrets go here, never in argv); nil: /dev/null.
    public var input: [UInt8]?
    public var timeout: Duration
    /// Output kept per stream; the rest is counted and dropped.
    public var outputLimit: Int = 1 << 20

    public init(arguments: [String], timeout: Duration) {
        request = SpawnRequest(arguments: arguments)
        request.isolation = .newProcessGroup
        request.environment = HelperCommand.toolEnvironment()
        self.timeout = timeout
    }

    /// What a helper gets unless its caller chooses: PATH alone. berth's own
    /// environment holds the container's secrets (GITHUB_TOKEN, API keys),
    /// which a tool like ssh-keygen or a probe has no business inheriting.
    public static func toolEnvironment() -> [String] {
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        return ["PATH=" + path]
    }
}

public struct HelperResult: Sendable {
    /// nil when the command never ran (spawnError says why).
    public var status: ChildStatus?
    public var standardOutput: [UInt8] = []
    public var standardError: [UInt8] = []
    public var droppedBytes = 0
    public var timedOut = false
    public var spawnError: SpawnError?

    public var succeeded: Bool { status == .exited(0) && !timedOut }
}

extension SpawnError: @unchecked Sendable {}

extension EventLoop {
    /// Runs `command`; `completion` is called on the loop exactly once. On
    /// timeout the helper's whole process group is killed.
    @discardableResult
    public func runHelper(_ command: HelperCommand, completion: @escaping (HelperResult) -> Void) -> HelperHandle {
        let run = HelperRun(loop: self, command: command, completion: completion)
        let handle = HelperHandle(run)
        run.start()
        return handle
    }
}

/// The helpers started for one piece of work, to end together: a
/// provisioning step's at its timeout, so nothing it started outlives it.
public final class HelperGroup {
    private var handles: [HelperHandle] = []

    public init() {}

    /// Keeps `handle` (a finished helper's is dropped at the next add).
    @discardableResult
    public func add(_ handle: HelperHandle) -> HelperHandle {
        handles.removeAll { !$0.isRunning }
        handles.append(handle)
        return handle
    }

    /// SIGKILL to every helper still running; each completion still runs.
    public func killAll() {
        handles.forEach { $0.kill() }
    }
}

/// A running helper, to end early (a backup aborted at shutdown): its whole
/// process group gets SIGKILL and the completion still runs, with that status.
public final class HelperHandle {
    private weak var run: HelperRun?

    fileprivate init(_ run: HelperRun) { self.run = run }

    public func kill() { run?.killGroup() }

    public var isRunning: Bool { run.map { !$0.finished } ?? false }

    /// `number` to the helper (its group, as `kill`), to let it end in its
    /// own way (restic removes its repository lock on SIGINT).
    public func signal(_ number: Int32) { run?.signalGroup(number) }
}

private final class HelperRun {
    let loop: EventLoop
    let command: HelperCommand
    let completion: (HelperResult) -> Void
    var result = HelperResult()
    /// Our ends of the helper's pipes; nil once closed.
    var stdoutPipe: FileDescriptor?
    var stderrPipe: FileDescriptor?
    var stdinPipe: FileDescriptor?
    var pendingInput: ArraySlice<UInt8> = []
    var timer: EventLoop.TimerID?
    var pid: pid_t = 0
    var finished = false

    init(loop: EventLoop, command: HelperCommand, completion: @escaping (HelperResult) -> Void) {
        self.loop = loop
        self.command = command
        self.completion = completion
    }

    /// Its process group, or itself when it shares its caller's group.
    var target: pid_t { command.request.isolation == .sameGroup ? pid : -pid }

    func killGroup() { signalGroup(SIGKILL) }

    func signalGroup(_ number: Int32) {
        if pid > 0 && !finished { kill(target, number) }
    }

    func start() {
        var request = command.request
        // The child's ends, closed here once it has its copies.
        var childEnds: [Int32] = []
        defer { childEnds.forEach { close($0) } }
        do throws(Errno) {
            let out = try makePipe()
            stdoutPipe = out.read
            childEnds.append(out.write.rawValue)
            request.standardOutput = out.write.rawValue
            let err = try makePipe()
            stderrPipe = err.read
            childEnds.append(err.write.rawValue)
            request.standardError = err.write.rawValue
            if let input = command.input {
                let pipe = try makePipe(nonBlockingWrite: true)
                stdinPipe = pipe.write
                childEnds.append(pipe.read.rawValue)
                request.standardInput = pipe.read.rawValue
                pendingInput = input[...]
            } else {
                let devNull = open("/dev/null", O_RDONLY | O_CLOEXEC)
                if devNull >= 0 { childEnds.append(devNull) }
                request.standardInput = devNull
            }
        } catch {
            finish(spawnError: SpawnError(step: .fork, errno: error, pid: nil))
            return
        }

        do {
            pid = try Spawner.spawn(request)
        } catch {
            if let failed = error.pid {
                // Reaped by the loop like everyone else; we only report.
                loop.onExit(of: failed) { _ in }
            }
            finish(spawnError: error)
            return
        }
        loop.onExit(of: pid) { [self] status in
            guard status.isTermination else { return }
            result.status = status
            finish(spawnError: nil)
        }
        timer = loop.schedule(after: command.timeout) { [self] in
            result.timedOut = true
            kill(target, SIGKILL)
        }
        if let stdoutPipe { watchOutput(stdoutPipe) { [self] bytes in append(bytes, to: \.standardOutput) } }
        if let stderrPipe { watchOutput(stderrPipe) { [self] bytes in append(bytes, to: \.standardError) } }
        if stdinPipe != nil { feedInput() }
    }

    private func makePipe(nonBlockingWrite: Bool = false) throws(Errno) -> (read: FileDescriptor, write: FileDescriptor) {
        var fds: [Int32] = [0, 0]
        _ = try retryingOnInterrupt { berth_pipe_cloexec(&fds) }
        let ours = nonBlockingWrite ? fds[1] : fds[0]
        _ = fcntl(ours, F_SETFL, fcntl(ours, F_GETFL) | O_NONBLOCK)
        return (FileDescriptor(rawValue: fds[0]), FileDescriptor(rawValue: fds[1]))
    }

    private func append(_ bytes: UnsafeRawBufferPointer, to stream: WritableKeyPath<HelperResult, [UInt8]>) {
        let room = max(0, command.outputLimit - result[keyPath: stream].count)
        result[keyPath: stream].append(contentsOf: bytes.prefix(room))
        result.droppedBytes += max(0, bytes.count - room)
    }

    private func watchOutput(_ fd: FileDescriptor, _ sink: @escaping (UnsafeRawBufferPointer) -> Void) {
        do {
            try loop.watch(fd, events: .readable) { [self] _ in
                if drain(fd, sink) { closeOutput(fd) }
            }
        } catch {
            closeOutput(fd)
        }
    }

    /// Reads what is there, at most `reads` × 16 KiB: a helper (a probe now
    /// runs as the untrusted user) that never stops writing must not keep
    /// the loop here. True at end of stream.
    @discardableResult
    private func drain(_ fd: FileDescriptor, reads: Int = 4, _ sink: (UnsafeRawBufferPointer) -> Void) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 16384)
        var left = reads
        while left > 0 {
            let got: Int
            do {
                got = try buffer.withUnsafeMutableBytes { try fd.read(into: $0) }
            } catch {
                return (error as? Errno) != .wouldBlock
            }
            guard got > 0 else { return true }
            buffer.withUnsafeBytes { sink(UnsafeRawBufferPointer(rebasing: $0.prefix(got))) }
            left -= 1
        }
        return false
    }

    private func closeOutput(_ fd: FileDescriptor?) {
        guard let fd else { return }
        loop.unwatch(fd)
        try? fd.close()
        if fd == stdoutPipe { stdoutPipe = nil }
        if fd == stderrPipe { stderrPipe = nil }
    }

    private func feedInput() {
        guard let stdinPipe else { return }
        while !pendingInput.isEmpty {
            do {
                let written = try pendingInput.withUnsafeBytes { try stdinPipe.write($0) }
                guard written > 0 else { break }
                pendingInput = pendingInput.dropFirst(written)
            } catch Errno.wouldBlock {
                try? loop.watch(stdinPipe, events: .writable) { [self] _ in feedInput() }
                return
            } catch {
                break  // EPIPE: the helper does not want the rest.
            }
        }
        closeInput()
    }

    private func closeInput() {
        guard let stdinPipe else { return }
        loop.unwatch(stdinPipe)
        try? stdinPipe.close()
        self.stdinPipe = nil
    }

    private func finish(spawnError: SpawnError?) {
        guard !finished else { return }
        finished = true
        result.spawnError = spawnError
        if let timer { loop.cancel(timer) }
        // Whatever the helper wrote before exiting is already in the pipes;
        // a grandchild still holding them open does not delay the result.
        // Bounded (1 MiB a stream) for a grandchild that keeps writing.
        if let stdoutPipe { drain(stdoutPipe, reads: 64) { [self] in append($0, to: \.standardOutput) } }
        if let stderrPipe { drain(stderrPipe, reads: 64) { [self] in append($0, to: \.standardError) } }
        closeOutput(stdoutPipe)
        closeOutput(stderrPipe)
        closeInput()
        completion(result)
    }
}
