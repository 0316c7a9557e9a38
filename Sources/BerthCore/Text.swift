import Glibc

extension StringProtocol {
    /// Without leading and trailing spaces, tabs, CRs and LFs.
    public func trimmingWhitespace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" }
        return String(drop(while: isSpace).reversed().drop(while: isSpace).reversed())
    }
}

/// `a, b,,c` → ["a", "b", "c"]: the form of every comma-separated variable.
public func commaSeparated(_ text: String?) -> [String] {
    (text ?? "").split(separator: ",").map { $0.trimmingWhitespace() }.filter { !$0.isEmpty }
}

/// This process's environment as a dictionary. The name ends at the first
/// `=` byte, as for the kernel and libc.
public func currentEnvironment() -> [String: String] {
    var values: [String: String] = [:]
    var cursor = environ
    while let entry = cursor.pointee {
        let pair = String(cString: entry)
        if let equals = pair.utf8.firstIndex(of: UInt8(ascii: "=")) {
            values[String(pair[..<equals])] = String(pair[pair.utf8.index(after: equals)...])
        }
        cursor += 1
    }
    return values
}

/// One variable of this process's environment (nil when unset; an empty
/// value is ""). A plain start reads the dozen it needs so: the first
/// `[String: String]` a Swift process builds costs the runtime ~240,000
/// instructions of generic metadata instantiation (counted with callgrind),
/// more than all of tini's start-up.
public func environmentValue(_ name: String) -> String? {
    // withCString: a short name goes through the stack, where passing the
    // String itself would allocate a C copy on the heap for every call.
    guard let value = name.withCString({ getenv($0) }) else { return nil }
    return String(cString: value)
}

/// Whether NAME or NAME_FILE has a non-empty value: `Settings.isSet` for
/// this process's environment, with NAME_FILE put together on the stack
/// (a heap string for each of a dozen names showed in the start-up count).
public func environmentIsSet(_ name: String) -> Bool {
    name.withCString { head in
        if let value = getenv(head), value.pointee != 0 { return true }
        let length = strlen(head)
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: length + 6) { buffer in
            memcpy(buffer.baseAddress!, head, length)
            _ = "_FILE".withCString { memcpy(buffer.baseAddress! + length, $0, 6) }
            guard let value = getenv(buffer.baseAddress!) else { return false }
            return value.pointee != 0
        }
    }
}

/// This process's environment as sorted `NAME=value` lines, one per name
/// (the last one wins, as in `currentEnvironment`): the form a child's
/// environment takes, built without a dictionary.
public func currentEnvironmentLines() -> [String] {
    var entries: [UnsafeMutablePointer<CChar>] = []
    var cursor = environ
    while let entry = cursor.pointee {
        if strchr(entry, Int32(UInt8(ascii: "="))) != nil { entries.append(entry) }
        cursor += 1
    }
    func nameLength(_ entry: UnsafeMutablePointer<CChar>) -> Int { strchr(entry, Int32(UInt8(ascii: "=")))! - entry }
    var lines: [String] = []
    lines.reserveCapacity(entries.count)
    for (index, entry) in entries.enumerated() {
        let length = nameLength(entry)
        let overridden = entries[(index + 1)...].contains { later in nameLength(later) == length && memcmp(later, entry, length) == 0 }
        if !overridden { lines.append(String(cString: entry)) }
    }
    return lines.sorted()
}

/// PATH when it is unset or empty, as `findExecutable` has it.
public let defaultSearchPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/// Whether `name` is executable in a directory of `searchPath` (PATH's
/// form; relative entries are skipped, as `findExecutable` skips them).
/// Each candidate is built in one buffer: a plain start asks this for
/// three programs, and string interpolation per directory cost ten times
/// as many instructions.
public func isExecutableOnPath(_ name: String, searchPath: String) -> Bool {
    searchPath.withCString { path in
        name.withCString { program in
            let programLength = strlen(program)
            return withUnsafeTemporaryAllocation(of: CChar.self, capacity: Int(PATH_MAX)) { buffer in
                var start = path
                while start.pointee != 0 {
                    let end = strchr(start, Int32(UInt8(ascii: ":"))).map { UnsafePointer($0) } ?? start + strlen(start)
                    let length = end - start
                    if length > 0, start.pointee == CChar(UInt8(ascii: "/")), length + 1 + programLength < buffer.count {
                        memcpy(buffer.baseAddress!, start, length)
                        buffer[length] = CChar(UInt8(ascii: "/"))
                        memcpy(buffer.baseAddress! + length + 1, program, programLength + 1)
                        if access(buffer.baseAddress!, X_OK) == 0 { return true }
                    }
                    if end.pointee == 0 { break }
                    start = end + 1
                }
                return false
            }
        }
    }
}

/// Whether a directory holds an entry whose name does not start with a
/// dot and ends with `suffix` ("" for any); false when it cannot be opened.
public func directoryHasEntry(_ path: String, suffix: String = "") -> Bool {
    guard let directory = opendir(path) else { return false }
    defer { closedir(directory) }
    let ending = Array(suffix.utf8)
    while let entry = readdir(directory) {
        let matches = withUnsafeBytes(of: entry.pointee.d_name) { raw -> Bool in
            let length = strnlen(raw.baseAddress!.assumingMemoryBound(to: CChar.self), raw.count)
            guard length > 0, raw[0] != UInt8(ascii: "."), length >= ending.count else { return false }
            return ending.isEmpty || memcmp(raw.baseAddress! + length - ending.count, ending, ending.count) == 0
        }
        if matches { return true }
    }
    return false
}

/// Reads an open file to its end, or `limit` bytes; nil on a read error.
public func readAll(_ fd: Int32, limit: Int) -> [UInt8]? {
    var bytes: [UInt8] = []
    // Not a zero-filled array: clearing 64 KiB cost ~70,000 instructions
    // per file, more than reading a small one.
    return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 65536) { buffer -> [UInt8]? in
        while bytes.count < limit {
            let got = read(fd, buffer.baseAddress, min(buffer.count, limit - bytes.count))
            if got < 0 {
                if errno == EINTR { continue }
                return nil
            }
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

/// The names in a directory ("." and ".." left out), unsorted; nil when it
/// cannot be opened.
public func directoryNames(_ path: String) -> [String]? {
    guard let directory = opendir(path) else { return nil }
    return names(of: directory)
}

/// The names in the open directory `fd` (through a fresh open description,
/// so the offset `fd` shares is left alone); empty when it cannot be read.
public func directoryNames(in fd: Int32) -> [String] {
    let own = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard own >= 0 else { return [] }
    guard let directory = fdopendir(own) else {
        close(own)
        return []
    }
    return names(of: directory)
}

/// Reads and closes `directory`.
private func names(of directory: OpaquePointer) -> [String] {
    defer { closedir(directory) }
    var names: [String] = []
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}

/// `path` as a UNIX socket address for bind or connect; nil when the path
/// does not fit one (108 bytes with its NUL).
public func withUnixSocketAddress<R>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R? {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return nil }
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        for (index, byte) in bytes.enumerated() { raw[index] = byte }
    }
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
}
