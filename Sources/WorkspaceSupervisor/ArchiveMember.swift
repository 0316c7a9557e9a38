import BerthCore

/// One line of `tar --list --verbose --quoting-style=c`: its type (the mode
/// string's first letter), mode, path and, for links, the target.
public struct ArchiveMember: Equatable, Sendable {
    public var type: Character
    public var mode: String
    public var path: String
    public var linkTarget: String?

    public struct ParseError: Error, CustomStringConvertible {
        public let description: String
    }

    public static func parseListing(_ text: String) throws(ParseError) -> [ArchiveMember] {
        var members: [ArchiveMember] = []
        for line in text.split(separator: "\n") {
            let bytes = Array(line.utf8)
            guard let quote = bytes.firstIndex(of: UInt8(ascii: "\"")), let type = line.first else {
                throw ParseError(description: "unexpected listing line '\(line)'")
            }
            var cursor = quote
            let path = try unquote(bytes, &cursor)
            var target: String?
            let rest = String(decoding: bytes[cursor...], as: UTF8.self)
            if rest.hasPrefix(" -> \"") || rest.hasPrefix(" link to \"") {
                cursor = bytes[cursor...].firstIndex(of: UInt8(ascii: "\""))!
                target = try unquote(bytes, &cursor)
            } else if !rest.isEmpty {
                throw ParseError(description: "unexpected listing line '\(line)'")
            }
            members.append(ArchiveMember(type: type, mode: String(line.prefix { $0 != " " }), path: path, linkTarget: target))
        }
        return members
    }

    /// A C-quoted string starting at `cursor` (the opening quote); leaves
    /// `cursor` after the closing one.
    static func unquote(_ bytes: [UInt8], _ cursor: inout Int) throws(ParseError) -> String {
        var result: [UInt8] = []
        var index = cursor + 1
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                cursor = index + 1
                return String(decoding: result, as: UTF8.self)
            }
            if byte == UInt8(ascii: "\\"), index + 1 < bytes.count {
                let next = bytes[index + 1]
                if (UInt8(ascii: "0")...UInt8(ascii: "7")).contains(next), index + 3 < bytes.count {
                    let digits = bytes[(index + 1)...(index + 3)].map { $0 &- UInt8(ascii: "0") }
                    result.append(digits[0] &* 64 &+ digits[1] &* 8 &+ digits[2])
                    index += 4
                    continue
                }
                let escapes: [UInt8: UInt8] = [UInt8(ascii: "n"): 10, UInt8(ascii: "t"): 9, UInt8(ascii: "r"): 13, UInt8(ascii: "a"): 7,
                                               UInt8(ascii: "b"): 8, UInt8(ascii: "f"): 12, UInt8(ascii: "v"): 11]
                result.append(escapes[next] ?? next)
                index += 2
                continue
            }
            result.append(byte)
            index += 1
        }
        throw ParseError(description: "unterminated name in the listing")
    }

    /// The path's components, "." and empty ones dropped; nil when absolute
    /// or when one is "..".
    static func components(_ path: String) -> [Substring]? {
        guard !path.hasPrefix("/") else { return nil }
        let parts = path.split(separator: "/").filter { $0 != "." }
        return parts.contains("..") ? nil : parts
    }

    /// Why the archive must not be unpacked, or nil: absolute names, "..",
    /// a member under a symlink member (written through the link), a hard
    /// link leaving the tree or going through a symlink, device nodes,
    /// FIFOs and anything but files, directories and links.
    public static func refusal(_ members: [ArchiveMember]) -> String? {
        var symlinks = Set<[Substring]>()
        for member in members where member.type == "l" {
            if let parts = components(member.path) { symlinks.insert(parts) }
        }
        func throughSymlink(_ parts: [Substring]) -> Bool {
            parts.indices.dropLast().contains { symlinks.contains(Array(parts[...$0])) }
        }
        for member in members {
            guard "-dlh".contains(member.type) else {
                return "member '\(member.path)' is of type '\(member.type)' (a device, FIFO or other special file)"
            }
            guard let parts = components(member.path) else {
                return "member '\(member.path)' has an absolute path or a '..' component"
            }
            guard !throughSymlink(parts) else { return "member '\(member.path)' goes through a symbolic link member" }
            if member.type == "h" {
                guard let target = member.linkTarget, let targetParts = components(target) else {
                    return "hard link '\(member.path)' points outside the archive ('\(member.linkTarget ?? "")')"
                }
                guard !throughSymlink(targetParts) && !symlinks.contains(targetParts) else {
                    return "hard link '\(member.path)' goes through a symbolic link member"
                }
            }
        }
        return nil
    }
}
