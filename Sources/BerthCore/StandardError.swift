import Glibc
import SystemPackage

/// Unbuffered writes to fd 2: a PID 1 must not lose its last words in a
/// buffer. Once berth's loop exists they go through `StandardStreams.error`
/// and never block; before it (usage and start-up errors) straight to fd 2.
public enum StandardError {
    public static func write(_ text: String) {
        if let sink = StandardStreams.error {
            sink.write(line: Array(text.utf8))
        } else {
            writeAll(fd: STDERR_FILENO, text)
        }
    }
}

public enum StandardOutput {
    public static func write(_ text: String) {
        write(bytes: Array(text.utf8))
    }

    /// As they are (a relayed line need not be UTF-8).
    public static func write(bytes: [UInt8]) {
        if let sink = StandardStreams.output {
            sink.write(line: bytes)
        } else {
            bytes.withUnsafeBytes { _ = try? FileDescriptor(rawValue: STDOUT_FILENO).writeAll($0) }
        }
    }
}

func writeAll(fd: Int32, _ text: String) {
    var text = text
    text.withUTF8 { buffer in
        _ = try? FileDescriptor(rawValue: fd).writeAll(buffer)
    }
}
