import BerthCore
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

    public static func lookup(_ name: String, passwdFile: String = "/etc/passwd", groupFile: String = "/etc/group") throws(SettingError) -> UserAccount {
        guard let passwd = readTextFile(passwdFile) else {
            throw SettingError("cannot read \(passwdFile) to look up user '\(name)'")
        }
        for line in passwd.split(separator: "\n") {
            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
            guard fields.count >= 7, fields[0] == name else { continue }
            guard let uid = uid_t(fields[2]), let gid = gid_t(fields[3]) else {
                throw SettingError("\(passwdFile): the entry for '\(name)' has a bad uid or gid")
            }
            var groups: [gid_t] = []
            for groupLine in (readTextFile(groupFile) ?? "").split(separator: "\n") {
                let parts = groupLine.split(separator: ":", omittingEmptySubsequences: false)
                guard parts.count >= 4, let id = gid_t(parts[2]) else { continue }
                let members = parts[3].split(separator: ",").map { $0.trimmingWhitespace() }
                if members.contains(name) && id != gid && !groups.contains(id) { groups.append(id) }
            }
            return UserAccount(name: name, uid: uid, gid: gid, home: String(fields[5]),
                               shell: String(fields[6]), groups: [gid] + groups)
        }
        throw SettingError("BERTH_USER=\(name): no such user in \(passwdFile)")
    }
}

/// A text file of up to 16 MiB, or nil.
public func readTextFile(_ path: String) -> String? {
    readFile(path).map { String(decoding: $0, as: UTF8.self) }
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
