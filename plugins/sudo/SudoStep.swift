import BerthCore
import BerthProvisioning
import Glibc

/// sudo: the workspace user gets no sudo rights unless BERTH_SUDO asks for
/// passwordless sudo (the user has no password, so sudo with one would be a
/// lock without a key). The rule lives in its own sudoers.d file, checked
/// with `visudo -c` before it is installed and removed when BERTH_SUDO is off.
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

    public func run(in context: StepContext, done: @escaping (StepOutcome) -> Void) {
        let wanted: Bool
        do {
            wanted = try context.settings.boolean("BERTH_SUDO", default: false)
        } catch {
            return done(.failed(error.message))
        }
        let user: UserAccount
        switch context.user {
        case .success(let found): user = found
        case .failure(let error): return done(.failed(error.message))
        }
        guard wanted else {
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
            return done(.failed("BERTH_SUDO is on but sudo is not installed (no \(sudo))"))
        }
        guard includesDropIns() else {
            return done(.failed("\(sudoers) does not include \(dropIns), so berth's rule would not apply"))
        }
        // A passwd name is already plain; this keeps sudoers syntax out of it.
        guard user.name.utf8.allSatisfy({ isalnum(Int32($0)) != 0 || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") }) else {
            return done(.failed("BERTH_USER='\(user.name)': not a name berth writes into sudoers"))
        }
        let text = """
        # Written by berth because BERTH_SUDO is on; removed when it is off.
        \(user.name) ALL=(ALL:ALL) NOPASSWD: ALL

        """
        // sudo skips names with a dot in sudoers.d: the candidate is never live.
        let candidate = dropIns + "/.berth.candidate"
        let directory: DirectoryHandle
        do {
            directory = try DirectoryHandle.open(etc).directory("sudoers.d", mode: 0o755)
            try directory.write(Array(text.utf8), to: ".berth.candidate", mode: 0o440)
        } catch {
            return done(.failed("\(error)"))
        }
        guard access(visudo, X_OK) == 0 else { return install(text, in: directory, user: user, done: done) }
        context.loop.runHelper(HelperCommand(arguments: [visudo, "-c", "-q", "-f", candidate], timeout: .seconds(30))) { [self] result in
            guard result.succeeded else {
                try? directory.remove(".berth.candidate")
                let output = result.standardError + result.standardOutput
                let why = String(decoding: output, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? "rejected"
                return done(.failed("visudo -c rejected the rule: \(why)"))
            }
            install(text, in: directory, user: user, done: done)
        }
    }

    private func install(_ text: String, in directory: DirectoryHandle, user: UserAccount, done: (StepOutcome) -> Void) {
        try? directory.remove(".berth.candidate")
        do {
            try directory.write(Array(text.utf8), to: "berth", mode: 0o440)
            done(.ok("passwordless sudo for \(user.name)"))
        } catch {
            done(.failed("\(error)"))
        }
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
