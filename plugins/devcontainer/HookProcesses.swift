import BerthCore
import CBerth
import Glibc
import SystemPackage

/// Runs one life-cycle command for `HookRunner`: the string form by
/// `/bin/sh -c`, the array form exec'd with its arguments as they are, the
/// object form's members at the same time, each line of theirs prefixed
/// with the member's name. This process is the workspace user's and not
/// PID 1: it may block, and every wait is bounded by the hook's timeout.
enum HookProcesses {
    /// An SSH session's shell loads the AI keys from this file (the AI CLI
    /// step's profile snippet); the hook gets them the same way, and the
    /// command itself then runs as given (`exec "$@"`: no second parsing).
    static let sessionLoader = #"f="$HOME/.config/berth/ai-cli.env"; if [ -r "$f" ]; then . "$f"; fi; exec "$@""#

    static func arguments(_ command: LifecycleCommand) -> [String] {
        switch command {
        case .shell(let text): ["/bin/sh", "-c", sessionLoader, "sh", "/bin/sh", "-c", text]
        case .exec(let words): ["/bin/sh", "-c", sessionLoader, "sh"] + words
        case .parallel: []
        }
    }

    /// A member's (or the command's) process and, for members, the read
    /// end of the pipe its output comes through.
    final class Running {
        let name: String?
        let pid: pid_t
        var pipe: Int32
        var status: ChildStatus?
        var partial: [UInt8] = []
        init(name: String?, pid: pid_t, pipe: Int32) {
            self.name = name
            self.pid = pid
            self.pipe = pipe
        }
    }

    /// The command's status: the first failing member's for the object
    /// form; 124 (as timeout(1)) when the time ran out.
    static func run(_ command: LifecycleCommand, environment: [String], directory: String, timeout: Duration) -> ChildStatus {
        var running: [Running] = []
        let members: [(String?, LifecycleCommand)] = if case .parallel(let list) = command { list.map { ($0.name, $0.command) } } else { [(nil, command)] }
        for (name, member) in members {
            var request = SpawnRequest(arguments: arguments(member))
            request.environment = environment
            request.workingDirectory = directory
            // Its own group, in the task's session: a timeout ends the
            // group, and what it leaves in the session is still found.
            request.isolation = .newProcessGroup
            let devNull = open("/dev/null", O_RDONLY | O_CLOEXEC)
            request.standardInput = devNull
            var pipe: [Int32] = [-1, -1]
            if name != nil {
                guard berth_pipe_cloexec(&pipe) == 0 else {
                    HookRunner.say("\(name!): cannot make a pipe: \(String(cString: strerror(errno)))")
                    continue
                }
                request.standardOutput = pipe[1]
                request.standardError = pipe[1]
            }
            defer {
                if devNull >= 0 { close(devNull) }
                if pipe[1] >= 0 { close(pipe[1]) }
            }
            do {
                let pid = try Spawner.spawn(request)
                if pipe[0] >= 0 { _ = fcntl(pipe[0], F_SETFL, fcntl(pipe[0], F_GETFL) | O_NONBLOCK) }
                running.append(Running(name: name, pid: pid, pipe: pipe[0]))
            } catch {
                if pipe[0] >= 0 { close(pipe[0]) }
                HookRunner.say("\(name.map { $0 + ": " } ?? "")cannot start: \(error)")
                if let pid = error.pid { var raw: Int32 = 0; waitpid(pid, &raw, 0) }
                running.append(Running(name: name, pid: -1, pipe: -1))
                running.last!.status = .exited(127)
            }
        }
        let timedOut = waitAll(running, timeout: timeout)
        // What is still open is held by processes a member left running:
        // a child of ours relays it until they close it, so the hook is
        // over now and they are not cut off (SIGPIPE) either.
        let open = running.filter { $0.pipe >= 0 }
        if !open.isEmpty {
            if fork() == 0 {
                relay(open, until: nil)
                _exit(0)
            }
            open.forEach { close($0.pipe); $0.pipe = -1 }
        }
        if timedOut {
            HookRunner.say("timed out after \(timeout.shortDescription) (BERTH_HOOK_TIMEOUT)")
            return .exited(124)
        }
        var result = ChildStatus.exited(0)
        for member in running {
            let status = member.status ?? .exited(127)
            if let name = member.name, status != .exited(0) { HookRunner.say("\(name): \(status.summary)") }
            if result == .exited(0), status != .exited(0) { result = status }
        }
        return result
    }

    /// Relays output and reaps until every process ended; past the timeout
    /// SIGTERM to the groups still running, SIGKILL 5 s later. true when
    /// the time ran out.
    static func waitAll(_ running: [Running], timeout: Duration) -> Bool {
        let start = MonotonicClock.now()
        var deadline = start + timeout.nanoseconds
        var timedOut = false
        var killed = false
        while running.contains(where: { $0.status == nil }) {
            relay(running, until: 20)
            for member in running where member.status == nil {
                var raw: Int32 = 0
                if waitpid(member.pid, &raw, WNOHANG) == member.pid {
                    let status = ChildStatus(waitStatus: raw)
                    if status.isTermination { member.status = status }
                }
            }
            guard MonotonicClock.now() >= deadline, !killed else { continue }
            let signal = timedOut ? SIGKILL : SIGTERM
            for member in running where member.status == nil { kill(-member.pid, signal) }
            if timedOut { killed = true } else { timedOut = true }
            deadline = MonotonicClock.now() + Duration.seconds(5).nanoseconds
        }
        // What the members wrote before they ended (bounded: a leftover
        // writing on keeps its pipe, which the caller hands on).
        for _ in 0..<64 where running.contains(where: { $0.pipe >= 0 }) {
            guard drain(running) else { break }
        }
        return timedOut
    }

    /// One poll of the open pipes (`milliseconds`; nil: until all close)
    /// and what they hold, each line prefixed with its member's name.
    static func relay(_ running: [Running], until milliseconds: Int32?) {
        repeat {
            var fds = running.filter { $0.pipe >= 0 }.map { pollfd(fd: $0.pipe, events: Int16(POLLIN), revents: 0) }
            if fds.isEmpty {
                if let milliseconds { usleep(useconds_t(milliseconds) * 1000) }
                return
            }
            _ = poll(&fds, nfds_t(fds.count), milliseconds ?? -1)
            _ = drain(running)
        } while milliseconds == nil && running.contains(where: { $0.pipe >= 0 })
    }

    /// Reads what each open pipe holds now; true when anything was read.
    static func drain(_ running: [Running]) -> Bool {
        var readAny = false
        var buffer = [UInt8](repeating: 0, count: 16 << 10)
        for member in running where member.pipe >= 0 {
            do {
                let count = try retryingOnInterrupt { buffer.withUnsafeMutableBytes { read(member.pipe, $0.baseAddress, $0.count) } }
                if count > 0 {
                    readAny = true
                    member.partial += buffer[0..<count]
                    emitLines(member, final: false)
                    continue
                }
            } catch .wouldBlock {
                continue
            } catch {}
            // The end (or an error): what is left, then the pipe goes.
            emitLines(member, final: true)
            close(member.pipe)
            member.pipe = -1
        }
        return readAny
    }

    static func emitLines(_ member: Running, final: Bool) {
        let prefix = Array("\(member.name ?? "") | ".utf8)
        while let newline = member.partial.firstIndex(of: UInt8(ascii: "\n")) {
            StandardOutput.write(bytes: prefix + member.partial[...newline])
            member.partial.removeSubrange(...newline)
        }
        if final && !member.partial.isEmpty {
            StandardOutput.write(bytes: prefix + member.partial + [UInt8(ascii: "\n")])
            member.partial.removeAll()
        }
    }
}
