import BerthCore
import BerthProvisioning
import Glibc

/// sudo: the workspace user gets no sudo rights unless BERTH_SUDO asks for
/// passwordless sudo (the user has no password, so sudo with one would be a
/// lock without a key): for everything (on), or for one command,
/// `berth install-packages NAME...` (packages). The rule lives in its own
/// sudoers.d file, checked with `visudo -c` before it is installed,
/// rewritten when BERTH_SUDO changes and removed when it is off.
public final class SudoStep: ProvisioningStep {
    public let name = "sudo"
    public let dependencies: [String] = []

    let etc: String
    let sudoers: String
    let dropIns: String
    let sudo: String
    let visudo: String
    var rule: String { dropIns + "/berth" }

    public init(etc: String = "/etc", sudo: String = "/usr/bin/sudo", visudo: String = "/usr/sbin/visudo") {
        self.etc = etc
        self.sudoers = etc + "/sudoers"
        self.dropIns = etc + "/sudoers.d"
        self.sudo = sudo
        self.visudo = visudo
    }

    public func skipReason(given inputs: StepInputs) -> String? {
        if !inputs.settings.isSet("BERTH_SUDO") && access(rule, F_OK) != 0 {
            return "BERTH_SUDO is not set: the workspace user has no sudo rights"
        }
        if !inputs.runningAsRoot { return "needs root to write \(dropIns)" }
        return nil
    }

    /// What BERTH_SUDO grants.
    enum Rights {
        case nothing, everything, packages
    }

    static func rights(_ settings: Settings) throws(SettingError) -> Rights {
        guard let text = settings.value("BERTH_SUDO") else { return .nothing }
        if text.lowercased() == "packages" { return .packages }
        do {
            return try Settings.boolean(text, variable: "BERTH_SUDO") ? .everything : .nothing
        } catch {
            throw SettingError("BERTH_SUDO='\(text)': expected 1/0, true/false, yes/no, on/off or packages")
        }
    }

    public func run(in context: StepContext, done: @escaping (StepOutcome) -> Void) {
        let rights: Rights
        do {
            rights = try Self.rights(context.settings)
        } catch {
            return done(.failed(error.message))
        }
        let user: UserAccount
        switch context.user {
        case .success(let found): user = found
        case .failure(let error): return done(.failed(error.message))
        }
        guard rights != .nothing else {
            do {
                try DirectoryHandle.open(dropIns).remove("berth")
            } catch where error.errno == ENOENT {
            } catch {
                return done(.failed("\(error)"))
            }
            return done(.ok("no sudo rights for \(user.name)"))
        }
        do {
            _ = try configValue(user.name, from: "BERTH_USER")
        } catch {
            return done(.failed(error.message))
        }
        guard access(sudo, X_OK) == 0 else {
            return done(.failed("BERTH_SUDO is \(rights == .packages ? "packages" : "on") but sudo is not installed (no \(sudo))"))
        }
        guard includesDropIns() else {
            return done(.failed("\(sudoers) does not include \(dropIns), so berth's rule would not apply"))
        }
        // A passwd name is already plain; this keeps sudoers syntax out of it.
        guard user.name.utf8.allSatisfy({ isalnum(Int32($0)) != 0 || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") }) else {
            return done(.failed("BERTH_USER='\(user.name)': not a name berth writes into sudoers"))
        }
        let text: String
        let granted: String
        switch rights {
        case .nothing, .everything:
            text = """
            # Written by berth because BERTH_SUDO is on; removed when it is off.
            \(user.name) ALL=(ALL:ALL) NOPASSWD: ALL

            """
            granted = "passwordless sudo for \(user.name)"
        case .packages:
            let berth: String
            switch Self.trustedExecutable(selfExecutable()) {
            case .success(let path): berth = path
            case .failure(let why): return done(.failed("BERTH_SUDO=packages: \(why)"))
            }
            // sudo's own defaults, stated for this user so that no image's
            // sudoers can loosen them: a fresh environment, a PATH of root's
            // directories. The user's arguments follow the verb; berth
            // refuses any that is not a package name (PackageInstall), and
            // gives apt-get an environment of its own.
            text = """
            # Written by berth because BERTH_SUDO=packages; rewritten or removed when BERTH_SUDO changes.
            # \(user.name) may run this one command as root, and nothing else: berth \(PackageInstall.verb) NAME...
            Defaults:\(user.name) env_reset, secure_path="\(Self.securePath)"
            \(user.name) ALL=(root) NOPASSWD: \(berth) \(PackageInstall.verb) *

            """
            granted = "\(user.name) may install Debian packages: sudo \(berth) \(PackageInstall.verb) NAME..."
        }
        // sudo skips names with a dot in sudoers.d: the candidate is never live.
        let candidate = dropIns + "/.berth.candidate"
        let directory: DirectoryHandle
        do {
            directory = try DirectoryHandle.open(etc).directory("sudoers.d", mode: 0o755)
            try directory.write(Array(text.utf8), to: ".berth.candidate", mode: 0o440)
        } catch {
            return done(.failed("\(error)"))
        }
        guard access(visudo, X_OK) == 0 else { return install(text, in: directory, granted: granted, done: done) }
        context.runHelper(HelperCommand(arguments: [visudo, "-c", "-q", "-f", candidate], timeout: .seconds(30))) { [self] result in
            guard result.succeeded else {
                try? directory.remove(".berth.candidate")
                let output = result.standardError + result.standardOutput
                let why = String(decoding: output, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? "rejected"
                return done(.failed("visudo -c rejected the rule: \(why)"))
            }
            install(text, in: directory, granted: granted, done: done)
        }
    }

    private func install(_ text: String, in directory: DirectoryHandle, granted: String, done: (StepOutcome) -> Void) {
        try? directory.remove(".berth.candidate")
        do {
            try directory.write(Array(text.utf8), to: "berth", mode: 0o440)
            done(.ok(granted))
        } catch {
            done(.failed("\(error)"))
        }
    }

    /// Debian's own, where the image puts berth (/usr/local/bin), so that
    /// `sudo berth ...` finds it; the rule matches only its absolute path.
    static let securePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    /// This very binary, as sudoers names it.
    func selfExecutable() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard length > 0 else { return "" }
        return String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `path` when sudo may run it as root for the user: a plain file of
    /// root's that neither it nor any directory above it lets anyone else
    /// change (whoever could replace it would own the rule), spelled in
    /// characters sudoers takes literally.
    static func trustedExecutable(_ path: String) -> Result<String, SudoRefusal> {
        guard path.hasPrefix("/"), path.utf8.allSatisfy({ isalnum(Int32($0)) != 0 || "/._-+".utf8.contains($0) }) else {
            return .failure(SudoRefusal("berth's path '\(path)' is not one berth writes into sudoers"))
        }
        var prefix = ""
        for component in path.split(separator: "/") {
            var info = stat()
            let directory = prefix.isEmpty ? "/" : prefix
            guard lstat(directory, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR, info.st_uid == 0, info.st_mode & 0o022 == 0 else {
                return .failure(SudoRefusal("\(directory) is not a directory only root may change, so \(path) cannot be sudo's command"))
            }
            prefix += "/" + component
        }
        var info = stat()
        guard lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, info.st_uid == 0, info.st_mode & 0o022 == 0 else {
            return .failure(SudoRefusal("\(path) is not a file only root may change, so it cannot be sudo's command"))
        }
        return .success(path)
    }

    /// Debian's sudoers ends with `@includedir /etc/sudoers.d` (older ones
    /// spell it `#includedir`).
    private func includesDropIns() -> Bool {
        guard let text = readTextFile(sudoers) else { return false }
        return text.split(separator: "\n").contains { line in
            let words = line.split(separator: " ", omittingEmptySubsequences: true)
            return words.count >= 2 && (words[0] == "@includedir" || words[0] == "#includedir") && words[1] == dropIns
        }
    }
}

struct SudoRefusal: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
