import BerthCore
import BerthProvisioning
import Glibc

/// code-server: `~/.config/code-server/config.yaml` with bind-addr and auth,
/// and never a default password: CODE_SERVER_PASSWORD, or a random one kept
/// in a 0600 file whose path (not the password) berth prints. Only the
/// argon2id hash goes into config.yaml.
public final class CodeServerStep: ProvisioningStep {
    public let name = "code-server"
    public let dependencies: [String] = []
    /// Its plugin's variables that ask for it (any one of them, set, runs
    /// the step even without code-server installed).
    let requesting: [String]

    static let header = "# Written by berth at every start from CODE_SERVER_BIND, CODE_SERVER_AUTH and CODE_SERVER_PASSWORD."
    static let ownKeys: Set<String> = ["bind-addr", "auth", "password", "hashed-password"]

    init(requesting: [String]) {
        self.requesting = requesting
    }

    public func skipReason(given inputs: StepInputs) -> String? {
        if findExecutable("code-server", settings: inputs.settings) == nil && !requesting.contains(where: inputs.settings.isSet) {
            return "code-server is not installed and no CODE_SERVER_* variable is set"
        }
        return inputs.cannotWriteHome("/.config/code-server")
    }

    public func run(in context: StepContext, done: @escaping (StepOutcome) -> Void) {
        let settings = context.settings
        do {
            for name in ["CODE_SERVER_AUTH", "CODE_SERVER_BIND"] {
                if let value = settings.value(name) { _ = try configValue(value, from: name) }
            }
        } catch {
            return done(.failed(error.message))
        }
        let auth = settings.value("CODE_SERVER_AUTH", default: "password")
        guard auth == "password" || auth == "none" else {
            return done(.failed("CODE_SERVER_AUTH='\(auth)': expected password or none"))
        }
        let bind: String
        do {
            bind = try CodeServerPlugin.bind(settings).text
        } catch {
            return done(.failed(error.message))
        }
        let user: UserAccount
        let given: Secret?
        switch context.user {
        case .success(let found): user = found
        case .failure(let error): return done(.failed(error.message))
        }
        do {
            given = try settings.secret("CODE_SERVER_PASSWORD")
        } catch {
            return done(.failed(error.message))
        }
        if let given, given.bytes.contains(where: { $0 == UInt8(ascii: "\n") || $0 == 0 }) {
            return done(.failed("CODE_SERVER_PASSWORD: must be one line"))
        }
        let owner = AtomicFile.Owner(uid: user.uid, gid: user.gid)
        // For messages only: every file is reached through `directory`.
        let passwordPath = user.home + "/.config/code-server/password"
        // One handle for the whole step, the hash's wait included: the
        // directory written at the end is the one read at the start.
        let directory: DirectoryHandle
        let existing: String?
        do {
            let configDirectory = try user.openHome().directory(".config", mode: 0o755, owner: owner)
            directory = try configDirectory.directory("code-server", mode: 0o700, owner: owner)
            existing = directory.readText("config.yaml", owners: user.trustedOwners)
            if auth == "none" {
                try directory.write(Array(config(bind: bind, auth: auth, hash: nil, existing: existing).utf8), to: "config.yaml", mode: 0o600, owner: owner)
                return done(.ok("\(bind), auth none"))
            }
        } catch {
            return done(.failed("\(error)"))
        }

        // The password: given; else the one generated at an earlier start
        // (a restart keeps it); else a new random one.
        let password: [UInt8]
        let generated: Bool
        if let given {
            password = given.bytes
            generated = false
            do {
                try directory.remove("password")
            } catch {
                return done(.failed("\(error)"))
            }
        } else if let kept = directory.readText("password", owners: user.trustedOwners)?.trimmingWhitespace(), kept.count >= 16 {
            password = Array(kept.utf8)
            generated = true
        } else {
            password = Self.randomPassword()
            generated = true
        }
        let currentHash = existing.flatMap { Self.value(of: "hashed-password", in: $0) } ?? ""
        var command = HelperCommand(arguments: [Self.selfExecutable(), "hash-password"], timeout: .seconds(60))
        command.input = password + Array("\n\(currentHash)\n".utf8)
        context.runHelper(command) { [self] result in
            let hash = String(decoding: result.standardOutput, as: UTF8.self).trimmingWhitespace()
            guard result.succeeded, hash.hasPrefix("$argon2id$") else {
                let why = String(decoding: result.standardError, as: UTF8.self).trimmingWhitespace()
                return done(.failed("cannot hash the password: \(why.isEmpty ? "berth hash-password failed" : why)"))
            }
            do {
                _ = try configValue(hash, from: "the hash berth hash-password printed")
                if generated {
                    try directory.write(password + [UInt8(ascii: "\n")], to: "password", mode: 0o600, owner: owner)
                }
                try directory.write(Array(config(bind: bind, auth: auth, hash: hash, existing: existing).utf8), to: "config.yaml", mode: 0o600, owner: owner)
            } catch {
                return done(.failed("\(error)"))
            }
            if generated {
                StandardError.write("berth: code-server: no CODE_SERVER_PASSWORD given; the password is in \(passwordPath) (readable by \(user.name) only)\n")
                done(.ok("\(bind), password in \(passwordPath)"))
            } else {
                done(.ok("\(bind), password from CODE_SERVER_PASSWORD"))
            }
        }
    }

    /// berth's keys first, then the user's other lines (cert, user-data-dir…)
    /// as they were; a plain `password:` line never survives.
    func config(bind: String, auth: String, hash: String?, existing: String?) -> String {
        var lines = [Self.header, "bind-addr: \(bind)", "auth: \(auth)"]
        if let hash { lines.append("hashed-password: \"\(hash)\"") }
        for line in (existing ?? "").split(separator: "\n", omittingEmptySubsequences: false) {
            if line == Self.header { continue }
            if let key = Self.topLevelKey(line), Self.ownKeys.contains(key) { continue }
            lines.append(String(line))
        }
        while let last = lines.last, last.isEmpty { lines.removeLast() }
        return lines.joined(separator: "\n") + "\n"
    }

    static func topLevelKey(_ line: Substring) -> String? {
        guard let first = line.first, first != " ", first != "\t", first != "#", let colon = line.firstIndex(of: ":") else { return nil }
        return String(line[..<colon])
    }

    static func value(of key: String, in text: String) -> String? {
        for line in text.split(separator: "\n") where topLevelKey(line) == key {
            var value = line[line.index(after: line.firstIndex(of: ":")!)...].trimmingWhitespace()
            if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = String(value.dropFirst().dropLast()) }
            return value
        }
        return nil
    }


    /// 24 characters from 62: about 143 bits from the system's CSPRNG.
    static func randomPassword() -> [UInt8] {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".utf8)
        var generator = SystemRandomNumberGenerator()
        return (0..<24).map { _ in alphabet.randomElement(using: &generator)! }
    }

    /// This very binary, to run `berth hash-password` as a helper.
    static func selfExecutable() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard length > 0 else { return "/usr/local/bin/berth" }
        return String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
