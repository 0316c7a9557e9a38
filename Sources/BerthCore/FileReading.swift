import Glibc
import SystemPackage

/// Reads an open file to its end, or `limit` bytes; nil on a read error.
public func readAll(_ fd: Int32, limit: Int) -> [UInt8]? {
    let file = FileDescriptor(rawValue: fd)
    var bytes: [UInt8] = []
    // Not a zero-filled array: clearing 64 KiB cost ~70,000 instructions
    // per file, more than reading a small one.
    return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 65536) { buffer -> [UInt8]? in
        while bytes.count < limit {
            let room = UnsafeMutableBufferPointer(rebasing: buffer[0..<min(buffer.count, limit - bytes.count)])
            guard let got = try? file.read(into: UnsafeMutableRawBufferPointer(room)) else { return nil }
            if got == 0 { break }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[0..<got]))
        }
        return bytes
    }
}

/// A whole small file (up to `limit` bytes), or nil.
public func readFile(_ path: String, limit: Int = 16 << 20) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    return readAll(fd, limit: limit)
}

/// A text file of up to 16 MiB, or nil.
public func readTextFile(_ path: String) -> String? {
    readFile(path).map { String(decoding: $0, as: UTF8.self) }
}

