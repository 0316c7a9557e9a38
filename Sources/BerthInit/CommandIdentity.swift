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

    static func apply(to policy: inout InitPolicy, environment: [String: String]) throws(UsageError) {
        var removed = Set(platformSecrets.filter { environment[$0] != nil })
        // NOTIFY_SOCKET is berth's alone: the command must not speak to the
        // outer manager in berth's name.
        if environment["NOTIFY_SOCKET"] != nil { removed.insert("NOTIFY_SOCKET") }
        let user = try workspaceUser(environment)
        guard !removed.isEmpty || user != nil || policy.childEnvironment != nil else { return }

        var lines = policy.childEnvironment ?? environment.map { "\($0.key)=\($0.value)" }.sorted()
        if !removed.isEmpty {
            lines.removeAll { line in removed.contains(line.split(separator: "=", maxSplits: 1).first.map(String.init) ?? line) }
        }
        if let user {
            policy.childIdentity = SpawnRequest.Identity(uid: user.uid, gid: user.gid, groups: user.groups)
            let session = ["HOME": user.home, "USER": user.name, "LOGNAME": user.name, "SHELL": user.shell]
            lines.removeAll { line in session[line.split(separator: "=", maxSplits: 1).first.map(String.init) ?? line] != nil }
            lines += session.map { "\($0.key)=\($0.value)" }
            lines.sort()
        }
        policy.childEnvironment = lines
    }

    /// nil: the command keeps berth's own identity.
    private static func workspaceUser(_ environment: [String: String]) throws(UsageError) -> UserAccount? {
        guard getuid() == 0 else { return nil }
        switch environment["BERTH_COMMAND_USER"] ?? "" {
        case "", "workspace":
            break
        case "root":
            return nil
        case let other:
            throw UsageError(message: "BERTH_COMMAND_USER='\(other)': expected workspace (the default: BERTH_USER) or root")
        }
        let name = environment["BERTH_USER"].flatMap { $0.isEmpty ? nil : $0 } ?? "dev8"
        guard let user = try? UserAccount.lookup(name) else { return nil }
        return user
    }
}
