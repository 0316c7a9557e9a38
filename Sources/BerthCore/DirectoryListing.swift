import Glibc

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

/// The names in a directory ("." and ".." left out) as the bytes they are
/// (a name need not be UTF-8), unsorted; nil when it cannot be opened or
/// read to its end.
public func directoryEntryNames(_ path: String) -> [[UInt8]]? {
    guard let directory = opendir(path) else { return nil }
    let (names, complete) = rawNames(of: directory)
    return complete ? names : nil
}

/// Reads and closes `directory`: what it could read.
private func names(of directory: OpaquePointer) -> [String] {
    rawNames(of: directory).names.map { String(decoding: $0, as: UTF8.self) }
}

/// Reads and closes `directory`; `complete` false when readdir failed
/// before the end.
private func rawNames(of directory: OpaquePointer) -> (names: [[UInt8]], complete: Bool) {
    defer { closedir(directory) }
    var names: [[UInt8]] = []
    errno = 0
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { Array($0.prefix { $0 != 0 }) }
        if name != [0x2e] && name != [0x2e, 0x2e] { names.append(name) }
    }
    return (names, errno == 0)
}
