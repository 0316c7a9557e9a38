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

/// A file in a user's home that root is about to merge into: read only if
/// it is a plain file, not a symlink, with one link, owned by that user or
/// root. Otherwise nil, as if absent: a link planted to /etc/shadow must not
/// be copied into a file the user can read.
public func readUserFile(_ path: String, owner: uid_t) -> String? {
    let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, info.st_nlink == 1,
          info.st_uid == owner || info.st_uid == 0 else { return nil }
    return readAll(fd, limit: 16 << 20).map { String(decoding: $0, as: UTF8.self) }
}
