import Glibc

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

/// This process's environment as `NAME=value` lines (in environ's order), one per name
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
    return lines
}
