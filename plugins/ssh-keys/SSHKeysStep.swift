import BerthCore
import BerthProvisioning
import Glibc

/// ssh-keys: SSH_PUBLIC_KEY(_FILE) → ~/.ssh/authorized_keys, and
/// SSH_PRIVATE_KEY(_FILE) → ~/.ssh/id_<type> with its .pub, all owned by
/// the workspace user. Keys berth wrote sit between marker lines; lines the
/// user added outside them survive every boot, and a re-run writes the same
/// file (never a duplicated line).
public final class SSHKeysStep: ProvisioningStep {
    public let name = "ssh-keys"
    public let dependencies: [String] = []

    static let block = MarkedBlock(begin: "# BEGIN berth: keys from SSH_PUBLIC_KEY (replaced at every start)")

    public init() {}

    public func skipReason(given inputs: StepInputs) -> String? {
        let settings = inputs.settings
        guard settings.isSet("SSH_PUBLIC_KEY") || settings.isSet("SSH_PRIVATE_KEY") else {
            return "SSH_PUBLIC_KEY and SSH_PRIVATE_KEY are not set"
        }
        return inputs.cannotWriteHome("/.ssh")
    }

    public func run(in context: StepContext, done: @escaping (StepOutcome) -> Void) {
        do throws(StepFailure) {
            done(.ok(try provision(context)))
        } catch {
            done(.failed(error.message))
        }
    }

    struct StepFailure: Error {
        let message: String
    }

    private func provision(_ context: StepContext) throws(StepFailure) -> String {
        let user: UserAccount
        switch context.user {
        case .success(let found): user = found
        case .failure(let error): throw StepFailure(message: error.message)
        }
        let owner = AtomicFile.Owner(uid: user.uid, gid: user.gid)
        let publicKeys: [String]
        let privateKey: (key: Secret, parsed: OpenSSHKeys.PrivateKey)?
        do {
            publicKeys = try context.settings.secret("SSH_PUBLIC_KEY").map { try validatePublicKeys($0.text) } ?? []
            privateKey = try context.settings.secret("SSH_PRIVATE_KEY").map { key throws(StepFailure) in
                guard let parsed = OpenSSHKeys.parseOpenSSHPrivateKey(key.text) else {
                    throw StepFailure(message: "SSH_PRIVATE_KEY: not an OpenSSH private key (-----BEGIN OPENSSH PRIVATE KEY-----)")
                }
                return (key, parsed)
            }
        } catch let error as SettingError {
            throw StepFailure(message: error.message)
        } catch let error as StepFailure {
            throw error
        } catch {
            throw StepFailure(message: "\(error)")
        }

        var done: [String] = []
        do throws(AtomicFile.WriteError) {
            let sshDirectory = try user.openHome().directory(".ssh", mode: 0o700, owner: owner)
            if !publicKeys.isEmpty {
                let existing = sshDirectory.readText("authorized_keys", owners: user.trustedOwners)
                try sshDirectory.write(Array(merge(publicKeys, into: existing).utf8), to: "authorized_keys", mode: 0o600, owner: owner)
                done.append("\(publicKeys.count) authorized key\(publicKeys.count == 1 ? "" : "s")")
            }
            if let privateKey {
                let file = OpenSSHKeys.fileName(forType: privateKey.parsed.type)
                var keyBytes = privateKey.key.bytes
                if keyBytes.last != UInt8(ascii: "\n") { keyBytes.append(UInt8(ascii: "\n")) }
                try sshDirectory.write(keyBytes, to: file, mode: 0o600, owner: owner)
                try sshDirectory.write(Array((privateKey.parsed.publicLine + " \(user.name)@berth\n").utf8),
                                       to: file + ".pub", mode: 0o644, owner: owner)
                done.append("private key \(file)")
            }
        } catch {
            throw StepFailure(message: "\(error)")
        }
        return done.joined(separator: ", ")
    }

    /// Every non-empty, non-comment line must be an OpenSSH public key.
    func validatePublicKeys(_ text: String) throws(StepFailure) -> [String] {
        var keys: [String] = []
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingWhitespace()
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            do {
                try checkConfigValue(Array(trimmed.utf8), from: "SSH_PUBLIC_KEY: line \(index + 1)")
            } catch {
                throw StepFailure(message: error.message)
            }
            guard let key = OpenSSHKeys.validateAuthorizedKey(Substring(trimmed)) else {
                throw StepFailure(message: "SSH_PUBLIC_KEY: line \(index + 1) is not an OpenSSH public key")
            }
            if !keys.contains(key) { keys.append(key) }
        }
        guard !keys.isEmpty else { throw StepFailure(message: "SSH_PUBLIC_KEY: no key in it") }
        return keys
    }

    /// The user's own lines, then berth's block (replacing the old one).
    func merge(_ keys: [String], into existing: String?) -> String {
        Self.block.apply(keys, to: existing)
    }

}
