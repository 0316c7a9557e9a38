import BerthCore
import Glibc
import BerthProvisioning

/// Files in the workspace user's home, each written atomically with the
/// user as owner, parent directories made as the user's too.
struct UserFiles {
    let user: UserAccount

    struct MergeError: Error {
        let message: String
    }

    var owner: AtomicFile.Owner { AtomicFile.Owner(uid: user.uid, gid: user.gid) }
    var envFile: String { user.home + "/.config/berth/ai-cli.env" }

    func ensureDirectory(_ path: String, mode: mode_t) throws(AtomicFile.WriteError) {
        // Every missing directory below the home, so none is left to root.
        var current = user.home
        for part in path.dropFirst(user.home.count).split(separator: "/") {
            current += "/" + part
            try AtomicFile.ensureDirectory(current, mode: current == path ? mode : 0o755, owner: owner)
        }
    }

    func write(_ text: String, to path: String, mode: mode_t, directoryMode: mode_t = 0o755) throws(AtomicFile.WriteError) {
        let directory = AtomicFile.split(path).directory
        try ensureDirectory(directory, mode: directory == user.home + "/.config/berth" ? 0o700 : directoryMode)
        _ = try AtomicFile.write(Array(text.utf8), to: path, mode: mode, owner: owner)
    }

    /// Adds the keys the file lacks (see JSON.addingMissingKeys); true when
    /// the file changed. A file that does not parse stays as it is.
    func mergeJSON(_ defaults: [(key: String, value: JSON)], into path: String, mode: mode_t, directoryMode: mode_t = 0o755) throws -> Bool {
        let existing = readUserFile(path, owner: user.uid)
        let merged: String?
        do {
            merged = try JSON.addingMissingKeys(defaults, to: existing)
        } catch {
            throw MergeError(message: "\(path): \(error); left as it is")
        }
        guard let merged else { return false }
        try write(merged, to: path, mode: mode, directoryMode: directoryMode)
        return true
    }

    /// Sets one top-level key (berth's to own, like a credential), keeping
    /// the file's other keys.
    func setJSON(_ key: String, to value: JSON, in path: String, directoryMode: mode_t) throws {
        var members: [(key: String, value: JSON)] = []
        if let existing = readUserFile(path, owner: user.uid), !existing.allSatisfy(\.isWhitespace) {
            guard case .object(let found)? = try? JSON.parse(existing) else {
                throw MergeError(message: "\(path): not a JSON object; left as it is")
            }
            members = found
        }
        if let index = members.firstIndex(where: { $0.key == key }) {
            members[index].value = value
        } else {
            members.append((key, value))
        }
        try write(JSON.object(members).rendered() + "\n", to: path, mode: 0o600, directoryMode: directoryMode)
    }
}
