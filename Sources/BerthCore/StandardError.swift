import Glibc

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
        if let sink = StandardStreams.output {
            sink.write(line: Array(text.utf8))
        } else {
            writeAll(fd: STDOUT_FILENO, text)
        }
    }
}

func writeAll(fd: Int32, _ text: String) {
    var text = text
    text.withUTF8 { buffer in
        var offset = 0
        while offset < buffer.count {
            let written = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                return
            }
            offset += written
        }
    }
}
