import BerthCore
import BerthProvisioning
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
    static var platformSecrets: [String] { PlatformCredential.names }

    /// `variable` reads one variable; `environmentLines` gives them all as
    /// sorted `NAME=value` lines, asked for only when the command's
    /// environment differs from berth's (a plain start never builds it).
    static func apply(to policy: inout InitPolicy, variable: (String) -> String?,
                      environmentLines: () -> [String]) throws(UsageError) {
        var removed = platformSecrets.filter { variable($0) != nil }
        // NOTIFY_SOCKET is berth's alone: the command must not speak to the
        // outer manager in berth's name.
        if variable("NOTIFY_SOCKET") != nil { removed.append("NOTIFY_SOCKET") }
        // Decided before any UserAccount exists: even an Optional of one
        // costs ~38,000 instructions of metadata at its first copy.
        let candidate = try workspaceUserName(variable)
        guard !removed.isEmpty || candidate != nil || policy.childEnvironment != nil else { return }
        let user = candidate.flatMap { try? UserAccount.lookup($0) }
        guard !removed.isEmpty || user != nil || policy.childEnvironment != nil else { return }

        var lines = policy.childEnvironment ?? environmentLines()
        if !removed.isEmpty {
            lines.removeAll { removed.contains(variableName($0)) }
        }
        if let user {
            policy.childIdentity = SpawnRequest.Identity(uid: user.uid, gid: user.gid, groups: user.groups)
            // Arrays, not a dictionary: the first [String: String] costs
            // ~240,000 instructions of runtime metadata.
            let session = ["HOME", "USER", "LOGNAME", "SHELL"]
            lines.removeAll { session.contains(variableName($0)) }
            lines += ["HOME=" + user.home, "USER=" + user.name, "LOGNAME=" + user.name, "SHELL=" + user.shell]
            lines.sort()
        }
        policy.childEnvironment = lines
    }

    /// `NAME` of a `NAME=value` line (as `split(separator: "=")` had it,
    /// without an array per line).
    private static func variableName(_ line: String) -> String {
        var name = line[...]
        while name.utf8.first == UInt8(ascii: "=") { name = name.dropFirst() }
        guard let equals = name.utf8.firstIndex(of: UInt8(ascii: "=")) else { return String(name) }
        return String(name[..<equals])
    }

    /// nil: the command keeps berth's own identity; otherwise the account
    /// to look up (it may still not exist: then berth's identity too).
    private static func workspaceUserName(_ variable: (String) -> String?) throws(UsageError) -> String? {
        guard getuid() == 0 else { return nil }
        switch variable("BERTH_COMMAND_USER") ?? "" {
        case "", "workspace":
            break
        case "root":
            return nil
        case let other:
            throw UsageError(message: "BERTH_COMMAND_USER='\(other)': expected workspace (the default: BERTH_USER) or root")
        }
        let name = variable("BERTH_USER").flatMap { $0.isEmpty ? nil : $0 } ?? "dev8"
        return mayHaveAccount(name) ? name : nil
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
