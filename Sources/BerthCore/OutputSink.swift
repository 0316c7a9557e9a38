import Glibc
import SystemPackage

/// berth's own stdout or stderr, written without ever blocking the loop.
/// It writes through a separate open file description of the same file
/// (opened via /proc/self/fd/N) set to O_NONBLOCK, so the flag never leaks
/// to the command or the services sharing the original. Bytes the reader
/// (docker's log driver) has not taken yet wait in a bounded buffer; past
/// it, whole lines are dropped and counted.
public final class OutputSink {
    let fd: Int32
    /// Our own description, closed with the sink; -1 when writing through
    /// the shared descriptor.
    private let ownDescription: Int32
    let loop: EventLoop
    let limit: Int
    private var pending: [UInt8] = []
    private var sent = 0
    private var watching = false
    public private(set) var droppedLines = 0
    private var droppedSinceReport = 0

    public init(descriptor: Int32, loop: EventLoop, limit: Int = 1 << 20) {
        var info = stat()
        // A regular file never makes a writer wait, and a second description
        // with its own offset would overwrite what the command writes
        // through the shared one (`berth -- cmd > file 2>&1`).
        let regularFile = fstat(descriptor, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG
        let own = regularFile ? -1 : open("/proc/self/fd/\(descriptor)", O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_APPEND | O_NOCTTY)
        // Without /proc (or for a socket, which /proc cannot reopen), the
        // shared descriptor itself: writes may block then.
        fd = own >= 0 ? own : descriptor
        ownDescription = own
        self.loop = loop
        self.limit = limit
    }

    deinit {
        if watching { loop.unwatch(fd) }
        if ownDescription >= 0 { close(ownDescription) }
    }

    /// One or more whole lines (ending in a newline), kept or dropped as
    /// one: dropped, and counted as one line, when the buffer is full.
    public func write(line: [UInt8]) {
        if pending.count - sent + line.count > limit {
            droppedLines += 1
            droppedSinceReport += 1
            return
        }
        appendDropReport()
        pending.append(contentsOf: line)
        // Waiting for the reader already: the loop flushes when it can take more.
        if !watching { flush() }
    }

    private func appendDropReport() {
        guard droppedSinceReport > 0 else { return }
        pending.append(contentsOf: Array("berth: \(droppedSinceReport) log line\(droppedSinceReport == 1 ? "" : "s") dropped: output was not read fast enough\n".utf8))
        droppedSinceReport = 0
    }

    private func flush() {
        while sent < pending.count {
            do {
                let written = try pending[sent...].withUnsafeBytes { try FileDescriptor(rawValue: fd).write($0) }
                guard written > 0 else { throw Errno.ioError }
                sent += written
            } catch Errno.wouldBlock {
                if !watching {
                    watching = (try? loop.watch(fd, events: .writable) { [unowned self] _ in flush() }) != nil
                }
                compact()
                return
            } catch {
                // The reader is gone (EPIPE) or the file broke: nothing to wait for.
                pending.removeAll()
                sent = 0
                break
            }
        }
        pending.removeAll(keepingCapacity: pending.count < 64 << 10)
        sent = 0
        if watching {
            loop.unwatch(fd)
            watching = false
        }
    }

    /// At shutdown: what is still pending gets up to `seconds` to drain (a
    /// bounded wait, once, when nothing else is left to do); returns how
    /// many lines were dropped in all.
    public func finish(within seconds: Double = 0.5) -> Int {
        if watching {
            loop.unwatch(fd)
            watching = false
        }
        appendDropReport()
        let deadline = MonotonicClock.now() + UInt64(seconds * 1e9)
        while sent < pending.count, MonotonicClock.now() < deadline {
            do {
                let written = try pending[sent...].withUnsafeBytes { try FileDescriptor(rawValue: fd).write($0) }
                guard written > 0 else { break }
                sent += written
            } catch Errno.wouldBlock {
                // Interrupted or not, the loop's deadline bounds the wait.
                var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                _ = poll(&poller, 1, 50)
            } catch {
                break
            }
        }
        pending.removeAll()
        sent = 0
        return droppedLines
    }

    private func compact() {
        if sent > 64 << 10 {
            pending.removeFirst(sent)
            sent = 0
        }
    }
}

/// berth's stdout and stderr once its loop exists. A flooding service fills
/// the same pipe berth's own lines go to; with a reader that stopped
/// reading, one blocking write would stall PID 1 (no reaping, no signal
/// forwarding). So from `route(through:)` on, `StandardError.write`,
/// `StandardOutput.write` and the services' relayed lines all go through
/// these two sinks: never blocking, one bounded backlog per stream, in order.
public enum StandardStreams {
    // berth's PID 1 writes from its one loop thread only.
    nonisolated(unsafe) public private(set) static var output: OutputSink?
    nonisolated(unsafe) public private(set) static var error: OutputSink?

    public static func route(through loop: EventLoop) {
        output = OutputSink(descriptor: STDOUT_FILENO, loop: loop)
        error = OutputSink(descriptor: STDERR_FILENO, loop: loop)
    }

    /// Before berth exits: what is pending gets a bounded moment to drain,
    /// then writes go straight to the descriptors again. Returns the lines
    /// dropped in all.
    @discardableResult
    public static func finish(within seconds: Double = 0.25) -> Int {
        let dropped = (output?.finish(within: seconds) ?? 0) + (error?.finish(within: seconds) ?? 0)
        output = nil
        error = nil
        return dropped
    }
}
