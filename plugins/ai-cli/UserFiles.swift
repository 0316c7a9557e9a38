import BerthCore
import Glibc
import BerthProvisioning

/// Files in the workspace user's home, each written atomically with the
/// user as owner, parent directories made as the user's too. Every path is
/// relative to the home's handle: nothing is looked up by name from `/`
/// again once the home is open.
struct UserFiles {
    let user: UserAccount
    let home: DirectoryHandle

    init(user: UserAccount) throws(AtomicFile.WriteError) {
        self.user = user
        self.home = try user.openHome()
    }

    struct MergeError: Error {
        let message: String
    }

    var owner: AtomicFile.Owner { AtomicFile.Owner(uid: user.uid, gid: user.gid) }
    static let envDirectory = ".config/berth"
    static let envName = "ai-cli.env"
    var envFile: String { user.home + "/" + Self.envDirectory + "/" + Self.envName }

    /// The directory holding `relativePath`, made (every missing component
    /// the user's, so none is left to root) and held open.
    func parent(of relativePath: String, directoryMode: mode_t) throws(AtomicFile.WriteError) -> (directory: DirectoryHandle, name: String) {
        let (directory, name) = AtomicFile.split(relativePath)
        guard directory != "." else { return (home, name) }
        let mode = directory == Self.envDirectory ? 0o700 : directoryMode
        return (try home.directory(directory, mode: mode, owner: owner), name)
    }

    func directory(_ relativePath: String, mode: mode_t) throws(AtomicFile.WriteError) -> DirectoryHandle {
        try home.directory(relativePath, mode: mode, owner: owner)
    }

    func write(_ text: String, to relativePath: String, mode: mode_t, directoryMode: mode_t = 0o755) throws(AtomicFile.WriteError) {
        let (directory, name) = try parent(of: relativePath, directoryMode: directoryMode)
        _ = try directory.write(Array(text.utf8), to: name, mode: mode, owner: owner)
    }

    func removeEnvFile() throws(AtomicFile.WriteError) {
        let directory: DirectoryHandle
        do {
            directory = try home.existingDirectory(Self.envDirectory)
        } catch where error.errno == ENOENT {
            return
        }
        try directory.remove(Self.envName)
    }

    /// Adds the keys the file lacks (see JSON.addingMissingKeys); true when
    /// the file changed. A file that does not parse stays as it is.
    func mergeJSON(_ defaults: [(key: String, value: JSON)], into relativePath: String, mode: mode_t, directoryMode: mode_t = 0o755) throws -> Bool {
        let (directory, name) = try parent(of: relativePath, directoryMode: directoryMode)
        let existing = directory.readText(name, owners: user.trustedOwners)
        let merged: String?
        do {
            merged = try JSON.addingMissingKeys(defaults, to: existing)
        } catch {
            throw MergeError(message: "\(directory.path)/\(name): \(error); left as it is")
        }
        guard let merged else { return false }
        _ = try directory.write(Array(merged.utf8), to: name, mode: mode, owner: owner)
        return true
    }

    /// Sets one top-level key (berth's to own, like a credential), keeping
    /// the file's other keys.
    func setJSON(_ key: String, to value: JSON, in relativePath: String, directoryMode: mode_t) throws {
        let (directory, name) = try parent(of: relativePath, directoryMode: directoryMode)
        var members: [(key: String, value: JSON)] = []
        if let existing = directory.readText(name, owners: user.trustedOwners), !existing.allSatisfy(\.isWhitespace) {
            guard case .object(let found)? = try? JSON.parse(existing) else {
                throw MergeError(message: "\(directory.path)/\(name): not a JSON object; left as it is")
            }
            members = found
        }
        if let index = members.firstIndex(where: { $0.key == key }) {
            members[index].value = value
        } else {
            members.append((key, value))
        }
        _ = try directory.write(Array((JSON.object(members).rendered() + "\n").utf8), to: name, mode: 0o600, owner: owner)
    }
}
