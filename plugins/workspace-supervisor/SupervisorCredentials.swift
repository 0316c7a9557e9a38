import BerthCore
import Glibc

/// The platform's credentials for the workspace supervisor, moved from the
/// container's environment (or root-readable `_FILE`s) into files that only
/// the supervisor's own user can read: its environment then holds paths,
/// never a value, so no `/proc/PID/environ` shows one.
enum SupervisorCredentials {
    /// `NAME_FILE=PATH` for each credential that is set. Files for
    /// credentials no longer set are removed.
    static func handOver(_ settings: Settings, to account: UserAccount, directory: String) throws(SettingError) -> [String: String] {
        var given: [String: Secret] = [:]
        for name in PlatformCredential.names {
            given[name] = try settings.secret(name)
        }
        let owner = AtomicFile.Owner(uid: account.uid, gid: account.gid)
        do {
            let parent = AtomicFile.split(directory).directory
            try AtomicFile.ensureDirectory(parent, mode: 0o755)
            try AtomicFile.ensureDirectory(directory, mode: 0o700, owner: owner)
        } catch {
            throw SettingError("cannot hand the workspace supervisor its credentials: \(error)")
        }
        var environment: [String: String] = [:]
        for name in PlatformCredential.names {
            let path = directory + "/" + name.lowercased()
            guard let secret = given[name] else {
                unlink(path)
                continue
            }
            do {
                try AtomicFile.write(secret.bytes, to: path, mode: 0o400, owner: owner)
            } catch {
                throw SettingError("cannot hand the workspace supervisor \(name): \(error)")
            }
            environment[name + "_FILE"] = path
        }
        return environment
    }
}
