import Glibc

/// The workspace user, read from the passwd and group files directly, as
/// container runtimes do (runc, Docker): no NSS modules to load, and the
/// answer comes from the image's own files.
public struct UserAccount: Equatable, Sendable {
    public let name: String
    public let uid: uid_t
    public let gid: gid_t
    public let home: String
    public let shell: String
    /// Supplementary groups: every group that lists the user as a member.
    public let groups: [gid_t]

    public init(name: String, uid: uid_t, gid: gid_t, home: String, shell: String, groups: [gid_t]) {
        self.name = name
        self.uid = uid
        self.gid = gid
        self.home = home
        self.shell = shell
        self.groups = groups
    }

    /// Read as bytes: the first passwd line whose name is NAME, with seven
    /// fields, gives the account; every group line with four fields and a
    /// numeric gid that lists NAME among its members adds a group, the
    /// primary first. Splitting both files into Strings instead cost ~3
    /// million instructions at every start of a workspace image (callgrind),
    /// twenty times all of tini's start-up.
    public static func lookup(_ name: String, passwdFile: String = "/etc/passwd", groupFile: String = "/etc/group") throws(SettingError) -> UserAccount {
        guard let passwd = readFile(passwdFile) else {
            throw SettingError("cannot read \(passwdFile) to look up user '\(name)'")
        }
        let wanted = Array(name.utf8)
        var entry: [ArraySlice<UInt8>]?
        forEachLine(passwd) { fields in
            guard fields.count >= 7, fields[0].elementsEqual(wanted) else { return true }
            entry = fields
            return false
        }
        guard let fields = entry else { throw SettingError("BERTH_USER=\(name): no such user in \(passwdFile)") }
        guard let uid = number(fields[2]).flatMap({ uid_t(exactly: $0) }), let gid = number(fields[3]).flatMap({ gid_t(exactly: $0) }) else {
            throw SettingError("\(passwdFile): the entry for '\(name)' has a bad uid or gid")
        }
        var groups: [gid_t] = []
        forEachLine(readFile(groupFile) ?? []) { parts in
            guard parts.count >= 4, let id = number(parts[2]).flatMap({ gid_t(exactly: $0) }) else { return true }
            let listed = parts[3].split(separator: UInt8(ascii: ","), omittingEmptySubsequences: true).contains { member in
                trimmed(member).elementsEqual(wanted)
            }
            if listed && id != gid && !groups.contains(id) { groups.append(id) }
            return true
        }
        return UserAccount(name: name, uid: uid, gid: gid, home: String(decoding: fields[5], as: UTF8.self),
                           shell: String(decoding: fields[6], as: UTF8.self), groups: [gid] + groups)
    }

    /// A group's id: a number as it is, a name from the group file; nil
    /// when there is no such group. Read with the same parser as `lookup`.
    public static func groupID(_ group: String, groupFile: String = "/etc/group") -> gid_t? {
        if let number = gid_t(group) { return number }
        let wanted = Array(group.utf8)
        var found: gid_t?
        forEachLine(readFile(groupFile) ?? []) { parts in
            guard parts.count >= 3, parts[0].elementsEqual(wanted) else { return true }
            found = number(parts[2]).flatMap { gid_t(exactly: $0) }
            return false
        }
        return found
    }

    /// Calls `body` with each non-empty line's colon-separated fields until
    /// it returns false.
    private static func forEachLine(_ bytes: [UInt8], _ body: ([ArraySlice<UInt8>]) -> Bool) {
        for line in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
            if !body(line.split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false)) { return }
        }
    }

    /// Decimal digits with an optional sign, nothing else (as `uid_t(text)`).
    private static func number(_ text: ArraySlice<UInt8>) -> Int64? {
        Int64(String(decoding: text, as: UTF8.self))
    }

    /// Without leading and trailing spaces, tabs, CRs and LFs.
    private static func trimmed(_ text: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        let isSpace: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D || $0 == 0x0A }
        guard let first = text.firstIndex(where: { !isSpace($0) }), let last = text.lastIndex(where: { !isSpace($0) }) else { return [] }
        return text[first...last]
    }
}

extension UserAccount {
    /// The home, opened from `/` without following a symlink at any
    /// component: the start of every write into it.
    public func openHome() throws(AtomicFile.WriteError) -> DirectoryHandle {
        try DirectoryHandle.open(home)
    }

    /// Who may own a file of this user's that root merges into: the user, or
    /// root (an image's skeleton files). A file of anyone else's is ignored.
    public var trustedOwners: [uid_t] { [uid, 0] }
}
