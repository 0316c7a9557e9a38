import BerthCore
import BerthSystemd
import CBerth
import Glibc
import SystemPackage

/// One service stream (stdout or stderr): read from its pipe on the loop,
/// cut into lines, each sent on prefixed with the service's name and kept
/// in a bounded ring for `berth logs`. Partial lines wait for their end
/// (flushed when the stream closes); lines over `maxLine` bytes are cut;
/// bytes that are not UTF-8 pass as they are.
final class ServiceStream {
    let prefix: [UInt8]
    let sink: OutputSink
    let recent: RecentLines
    let maxLine: Int
    let name: String
    let journal: Journal?
    let isStandardError: Bool
    private var partial: [UInt8] = []
    /// The read end of the service's pipe; nil once closed.
    private(set) var pipe: FileDescriptor?
    private weak var loop: EventLoop?
    /// What one wake-up reads: each byte costs line-splitting work, and a
    /// flooding service must leave the loop free for signals within
    /// milliseconds, whatever the build and the machine's load.
    private static let bytesPerWakeUp = 16 << 10
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: ServiceStream.bytesPerWakeUp, alignment: 1)
    var onClose: () -> Void = {}

    /// Byte strings replaced by `***` in each line (secrets a task could
    /// print); a value over several lines counts line by line.
    let masked: [[UInt8]]

    init(name: String, sink: OutputSink, recent: RecentLines, journal: Journal? = nil, isStandardError: Bool = false, maxLine: Int = 16 << 10,
         masked: [String] = []) {
        prefix = Array("\(name) | ".utf8)
        // Pieces under 8 bytes would mask ordinary words.
        self.masked = masked.flatMap { $0.split(separator: "\n") }.map { Array($0.utf8) }.filter { $0.count >= 8 }
        self.name = name
        self.journal = journal
        self.isStandardError = isStandardError
        self.sink = sink
        self.recent = recent
        self.maxLine = maxLine
    }

    deinit {
        buffer.deallocate()
        try? pipe?.close()
    }

    /// Starts reading `fd` (the read end of the service's pipe).
    func attach(_ fd: Int32, loop: EventLoop) {
        pipe = FileDescriptor(rawValue: fd)
        self.loop = loop
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        do {
            try loop.watch(fd, events: .readable) { [unowned self] _ in readOnce() }
        } catch {
            closeStream()
        }
    }

    /// One read per wake-up: a flooding service gets its turn like everyone
    /// else, and the loop goes back to signals in between.
    private func readOnce() {
        guard let pipe else { return }
        do {
            let count = try pipe.read(into: buffer)
            guard count > 0 else { return closeStream() }
            take(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
        } catch Errno.wouldBlock {
            return
        } catch {
            closeStream()
        }
    }

    /// memchr and memcpy rather than per-byte collection code: this runs for
    /// every byte a service writes, on the loop that forwards signals.
    private func take(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress else { return }
        var start = 0
        while start < bytes.count {
            let room = maxLine - partial.count
            // One byte past the room: a newline right at the limit still
            // ends the line instead of leaving an empty one behind.
            let window = min(bytes.count - start, room + 1)
            if let newline = memchr(base + start, Int32(UInt8(ascii: "\n")), window) {
                let length = base.distance(to: UnsafeRawPointer(newline)) - start
                appendToPartial(base + start, length)
                emit()
                start += length + 1
            } else if window > room {
                appendToPartial(base + start, room)
                emit()
                start += room
            } else {
                appendToPartial(base + start, window)
                start += window
            }
        }
    }

    private func appendToPartial(_ bytes: UnsafeRawPointer, _ count: Int) {
        partial.append(contentsOf: UnsafeBufferPointer(start: bytes.assumingMemoryBound(to: UInt8.self), count: count))
    }

    private func emit() {
        if !masked.isEmpty { maskSecrets() }
        var line = prefix
        line.append(contentsOf: partial)
        line.append(UInt8(ascii: "\n"))
        recent.append(partial)
        sink.write(line: line)
        journal?.send(service: name, line: String(decoding: partial, as: UTF8.self), fromStandardError: isStandardError)
        partial.removeAll(keepingCapacity: true)
    }

    private func maskSecrets() {
        for secret in masked where partial.count >= secret.count {
            var result: [UInt8] = []
            var index = 0
            var replaced = false
            partial.withUnsafeBytes { line in
                secret.withUnsafeBytes { needle in
                    while index < line.count,
                          let hit = berth_memmem(line.baseAddress! + index, line.count - index, needle.baseAddress!, needle.count) {
                        let at = line.baseAddress!.distance(to: UnsafeRawPointer(hit))
                        result.append(contentsOf: line[index..<at])
                        result.append(contentsOf: "***".utf8)
                        index = at + needle.count
                        replaced = true
                    }
                    if replaced { result.append(contentsOf: line[index...]) }
                }
            }
            if replaced { partial = result }
        }
    }

    func closeStream() {
        guard let pipe else { return }
        // Whatever is left in the pipe (at most 1 MiB: a daemon the service
        // left behind could keep writing), then the unterminated last line.
        var rounds = 0
        while rounds < (1 << 20) / ServiceStream.bytesPerWakeUp {
            guard let count = try? pipe.read(into: buffer), count > 0 else { break }
            take(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
            rounds += 1
        }
        if !partial.isEmpty { emit() }
        loop?.unwatch(pipe)
        try? pipe.close()
        self.pipe = nil
        onClose()
    }
}

/// The last lines of a service's output, bounded in count and bytes.
public final class RecentLines {
    let maxLines: Int
    let maxBytes: Int
    private var lines: [[UInt8]] = []
    private var bytes = 0

    public init(maxLines: Int = 500, maxBytes: Int = 256 << 10) {
        self.maxLines = maxLines
        self.maxBytes = maxBytes
    }

    func append(_ line: [UInt8]) {
        lines.append(line)
        bytes += line.count
        while lines.count > maxLines || (bytes > maxBytes && lines.count > 1) {
            bytes -= lines.removeFirst().count
        }
    }

    public var text: String {
        lines.map { String(decoding: $0, as: UTF8.self) + "\n" }.joined()
    }
}
