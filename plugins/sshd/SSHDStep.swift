import BerthCore
import BerthProvisioning
import Glibc

/// sshd: host keys generated in each container at first boot (never baked
/// into an image) and a hardened drop-in, `sshd_config.d/berth.conf`,
/// installed only after `sshd -t` accepted it.
public final class SSHDStep: ProvisioningStep {
    public let name = "sshd"
    public let dependencies: [String] = []

    let sshd: String
    let keygen: String
    let configDirectory: String
    let mainConfig: String
    static let knownHostKeyTypes = ["ed25519", "ecdsa", "rsa"]
    /// RSA is left out by default: its key takes 0.25-1.2 s to make here
    /// (median 0.6 s, measured), most of a container's time to first login,
    /// and every current SSH client speaks ed25519 or ECDSA.
    static let defaultHostKeyTypes = ["ed25519", "ecdsa"]

    public init(sshd: String = "/usr/sbin/sshd", keygen: String = "/usr/bin/ssh-keygen", sshDirectory: String = "/etc/ssh") {
        self.sshd = sshd
        self.keygen = keygen
        self.configDirectory = sshDirectory
        self.mainConfig = sshDirectory + "/sshd_config"
    }

    public func skipReason(given inputs: StepInputs) -> String? {
        // Password logins are off, so without a key nobody could log in.
        if !inputs.settings.isSet("SSH_PUBLIC_KEY") { return "SSH_PUBLIC_KEY is not set: nobody could log in" }
        if access(sshd, X_OK) != 0 { return "openssh-server is not installed (no \(sshd))" }
        if !inputs.runningAsRoot { return "needs root to write \(configDirectory)" }
        return nil
    }

    public func run(in context: StepContext, done: @escaping (StepOutcome) -> Void) {
        let port: Int
        do {
            port = try SSHDPlugin.port(context.settings)
        } catch {
            return done(.failed(error.message))
        }
        let types: [String]
        switch Self.hostKeyTypes(context.settings.value("SSH_HOST_KEY_TYPES")) {
        case .success(let parsed): types = parsed
        case .failure(let message): return done(.failed(message))
        }
        let user: UserAccount
        switch context.user {
        case .success(let found): user = found
        case .failure(let error): return done(.failed(error.message))
        }
        do {
            _ = try configValue(user.name, from: "BERTH_USER")
        } catch {
            return done(.failed(error.message))
        }
        guard includesDropIns() else {
            return done(.failed("\(mainConfig) does not Include \(configDirectory)/sshd_config.d/*.conf, so berth's settings would not apply"))
        }
        // Debian's sshd refuses to start without its privilege separation
        // directory, and /run is an empty tmpfs in most containers.
        do {
            try AtomicFile.ensureDirectory("/run/sshd", mode: 0o755)
        } catch {
            return done(.failed("\(error)"))
        }
        ensureHostKeys(types, context: context) { [self] result in
            switch result {
            case .failure(let message): done(.failed(message))
            case .success(let generated):
                installConfig(config(user: user.name, hostKeyTypes: types), context: context) { failure in
                    if let failure { return done(.failed(failure)) }
                    let keys = generated.isEmpty ? "host keys kept" : "host keys generated: \(generated.joined(separator: ", "))"
                    done(.ok("port \(port), \(keys)"))
                }
            }
        }
    }

    /// SSH_HOST_KEY_TYPES: names from `knownHostKeyTypes`, separated by
    /// commas or spaces, in the order sshd should offer them.
    static func hostKeyTypes(_ text: String?) -> KeysResult {
        guard let text else { return .success(defaultHostKeyTypes) }
        var types: [String] = []
        for word in text.split(whereSeparator: { $0 == "," || $0 == " " }).map({ String($0).lowercased() }) {
            guard knownHostKeyTypes.contains(word) else {
                return .failure("SSH_HOST_KEY_TYPES: unknown key type '\(word)' (known: \(knownHostKeyTypes.joined(separator: ", ")))")
            }
            if !types.contains(word) { types.append(word) }
        }
        if types.isEmpty { return .failure("SSH_HOST_KEY_TYPES is empty: name at least one of \(knownHostKeyTypes.joined(separator: ", "))") }
        return .success(types)
    }

    func config(user: String, hostKeyTypes: [String]) -> String {
        let hostKeys = hostKeyTypes.map { "HostKey \(configDirectory)/ssh_host_\($0)_key" }.joined(separator: "\n")
        return """
        # Written by berth at every start; edit SSH_HOST_KEY_TYPES or BERTH_USER instead.
        # The port is SSH_PORT, given to sshd as -p (which wins over any Port line).
        \(hostKeys)
        PermitRootLogin no
        PasswordAuthentication no
        KbdInteractiveAuthentication no
        PubkeyAuthentication yes
        MaxAuthTries 3
        AllowUsers \(user)
        X11Forwarding no
        ClientAliveInterval 60

        """
    }

    private func includesDropIns() -> Bool {
        guard let text = readTextFile(mainConfig) else { return false }
        return text.split(separator: "\n").contains { line in
            let words = line.split(separator: " ", omittingEmptySubsequences: true)
            return words.count >= 2 && words[0].lowercased() == "include" && words[1].hasPrefix(configDirectory + "/sshd_config.d/")
        }
    }

    enum KeysResult { case success([String]), failure(String) }

    /// All missing types at once (the RSA key alone takes most of a second:
    /// in parallel the others cost nothing extra); a key that exists is kept
    /// (a restart on a persistent /etc/ssh changes nothing). Reported in the
    /// fixed order of `types`, whichever finishes first.
    private func ensureHostKeys(_ types: [String], context: StepContext, done: @escaping (KeysResult) -> Void) {
        let directory: DirectoryHandle
        do {
            directory = try DirectoryHandle.open(configDirectory)
        } catch {
            return done(.failure("\(error)"))
        }
        let missing = types.filter { !directory.contains("ssh_host_\($0)_key") }
        guard !missing.isEmpty else { return done(.success([])) }
        var pending = missing.count
        var failures: [String] = []
        for type in missing {
            let name = "ssh_host_\(type)_key"
            // Generated under a temporary name, renamed once whole.
            let temporary = ".berth-host-\(type)"
            try? directory.remove(temporary)
            try? directory.remove(temporary + ".pub")
            let command = HelperCommand(arguments: [keygen, "-q", "-t", type, "-N", "", "-C", "", "-f", "\(configDirectory)/\(temporary)"], timeout: .seconds(30))
            context.runHelper(command) { result in
                if !result.succeeded {
                    try? directory.remove(temporary)
                    try? directory.remove(temporary + ".pub")
                    let why = String(decoding: result.standardError, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? "failed"
                    failures.append("ssh-keygen -t \(type): \(why)")
                } else {
                    do {
                        try directory.rename(temporary + ".pub", to: name + ".pub")
                        try directory.rename(temporary, to: name)
                    } catch {
                        failures.append("\(error)")
                    }
                }
                pending -= 1
                guard pending == 0 else { return }
                if let failure = failures.first { return done(.failure(failure)) }
                done(.success(missing))
            }
        }
    }

    /// `sshd -t` on the candidate first, ahead of everything else, as sshd
    /// will read it; only a config that passes replaces the installed one.
    private func installConfig(_ text: String, context: StepContext, done: @escaping (String?) -> Void) {
        let dropIns = configDirectory + "/sshd_config.d"
        let candidate = dropIns + "/.berth.conf.candidate"
        let wrapper = dropIns + "/.berth.conf.check"
        let directory: DirectoryHandle
        do {
            directory = try DirectoryHandle.open(configDirectory).directory("sshd_config.d", mode: 0o755)
            try directory.write(Array(text.utf8), to: ".berth.conf.candidate", mode: 0o644)
            try directory.write(Array("Include \(candidate)\nInclude \(mainConfig)\n".utf8), to: ".berth.conf.check", mode: 0o644)
        } catch {
            return done("\(error)")
        }
        context.runHelper(HelperCommand(arguments: [sshd, "-t", "-f", wrapper], timeout: .seconds(30))) { result in
            defer {
                try? directory.remove(".berth.conf.candidate")
                try? directory.remove(".berth.conf.check")
            }
            guard result.succeeded else {
                let why = String(decoding: result.standardError, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? "rejected"
                return done("sshd -t rejected the configuration: \(why)")
            }
            do {
                try directory.write(Array(text.utf8), to: "berth.conf", mode: 0o644)
                done(nil)
            } catch {
                done("\(error)")
            }
        }
    }
}

