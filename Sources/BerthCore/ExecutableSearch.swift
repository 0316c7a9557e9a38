import Glibc

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

/// Where `name` is in the container's PATH (the image's, not berth's).
public func findExecutable(_ name: String, settings: Settings) -> String? {
    let path = settings.value("PATH", default: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    for directory in path.split(separator: ":") where directory.hasPrefix("/") {
        let candidate = "\(directory)/\(name)"
        if access(candidate, X_OK) == 0 { return candidate }
    }
    return nil
}
