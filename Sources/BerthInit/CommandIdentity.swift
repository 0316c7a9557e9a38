import BerthCore
import Glibc

/// Who the command runs as and what it inherits: one rule, whether or not
/// berth provisions or supervises anything.
///
/// When berth is root and the workspace user (`BERTH_USER`, default dev8)
/// exists, the command runs as that user, like the SSH sessions beside it,
/// with its HOME, USER, LOGNAME and SHELL; `BERTH_COMMAND_USER=root` keeps
/// root for images that want it. Otherwise (berth is not root, or there is
/// no such user: a plain `tini`-style container) it runs as berth does.
/// The platform's credentials never reach it either way.
enum CommandIdentity {
    /// The command's environment: what every child inherits (nil: berth's
    /// own), with the workspace user's session when it runs as that user,
    /// whose identity `policy` then gets. nil: the command inherits
    /// berth's environment unchanged.
    static func apply(_ configuration: Configuration, inherited: Environment?, to policy: inout InitPolicy,
                      environment: () -> Environment = Environment.inherited) -> Environment? {
        // Decided before any UserAccount exists: even an Optional of one
        // costs ~38,000 instructions of metadata at its first copy.
        guard getuid() == 0, !configuration.commandKeepsRoot, mayHaveAccount(configuration.workspaceUserName),
              let user = try? UserAccount.lookup(configuration.workspaceUserName) else { return inherited }
        policy.childIdentity = SpawnRequest.Identity(uid: user.uid, gid: user.gid, groups: user.groups)
        var session = inherited ?? environment()
        session["HOME"] = user.home
        session["USER"] = user.name
        session["LOGNAME"] = user.name
        session["SHELL"] = user.shell
        return session
    }

    /// False when no line of the passwd file starts with `NAME:`, so
    /// `UserAccount.lookup` could only fail. Most containers berth runs in
    /// have no workspace user, and splitting the file into lines and fields
    /// (what the lookup does) cost ~1.1 million instructions at every start
    /// (callgrind), seven times all of tini's start-up; this scan of the
    /// bytes costs a few thousand. True when the file cannot be read: the
    /// lookup then decides.
    static func mayHaveAccount(_ name: String, passwdFile: String = "/etc/passwd") -> Bool {
        // A name that is not ASCII might equal a line's differently spelled one.
        guard name.utf8.allSatisfy({ $0 < 0x80 }), let bytes = readFile(passwdFile) else { return true }
        let wanted = Array(name.utf8) + [UInt8(ascii: ":")]
        return bytes.withUnsafeBufferPointer { file in
            var line = file.baseAddress!
            let end = line + file.count
            while end - line >= wanted.count {
                if memcmp(line, wanted, wanted.count) == 0 { return true }
                guard let newline = memchr(line, Int32(UInt8(ascii: "\n")), end - line) else { return false }
                line = UnsafePointer(newline.assumingMemoryBound(to: UInt8.self)) + 1
            }
            return false
        }
    }
}
