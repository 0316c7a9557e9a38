import BerthCore
import BerthProvisioning
import BerthSupervision
import Glibc

/// The services berth's own face supervises: the built-in ones whose
/// program is installed (each switched off by its variable) and the image's
/// own from BERTH_SERVICES_DIR.
enum NativeServices {
    struct Plan {
        var supervision: any InitPolicy.Supervision
    }

    /// The services on berth's loop, with their control socket.
    final class Supervision: InitPolicy.Supervision {
        let definitions: [ServiceDefinition]
        /// What services inherit (no provisioning secrets).
        let inherited: [String: String]
        let secrets: [String: String]
        let runDirectory: String
        let workspaceUser: UserAccount?
        let verbosity: Int
        let shutdownTimeout: Duration
        private var supervisor: Supervisor?

        init(definitions: [ServiceDefinition], inherited: [String: String], secrets: [String: String], runDirectory: String,
             workspaceUser: UserAccount?, verbosity: Int, shutdownTimeout: Duration) {
            self.definitions = definitions
            self.inherited = inherited
            self.secrets = secrets
            self.runDirectory = runDirectory
            self.workspaceUser = workspaceUser
            self.verbosity = verbosity
            self.shutdownTimeout = shutdownTimeout
        }

        func start(_ loop: EventLoop, ready: @escaping () -> Void, fatal: @escaping (String) -> Void) {
            let verbosity = verbosity
            do {
                let made = try Supervisor(definitions: definitions, loop: loop, environment: inherited, secrets: secrets,
                                          runDirectory: runDirectory,
                                          standardOutput: StandardStreams.output ?? OutputSink(descriptor: STDOUT_FILENO, loop: loop),
                                          standardError: StandardStreams.error ?? OutputSink(descriptor: STDERR_FILENO, loop: loop),
                                          log: { line in if verbosity >= 1 { StandardError.write("berth: \(line)\n") } })
                supervisor = made
                do {
                    try AtomicFile.ensureDirectory(runDirectory, mode: 0o755)
                    try made.serveControl(at: runDirectory + "/control.sock", group: workspaceUser?.gid,
                                          allowedUsers: Set(workspaceUser.map { [$0.uid] } ?? []))
                } catch {
                    StandardError.write("berth: no control socket in \(runDirectory): \(error)\n")
                }
                made.start(requiredReady: ready, fatal: fatal)
            } catch {
                fatal("\(error)")
            }
        }

        func stopAll(then done: @escaping () -> Void) {
            guard let supervisor else { return done() }
            supervisor.stopAll(done: done)
        }
    }

    /// False only when `plan` would return nil without a word: no built-in
    /// service is asked for or switched (any value of SSHD_ENABLED,
    /// CODE_SERVER_ENABLED or SUPERVISOR_ENABLED goes to `plan`, which
    /// checks it), neither program is on PATH, and no service file. Decided
    /// from a few variables read with `variable` (getenv on a plain start),
    /// so that start builds no dictionary of the environment.
    static func mayHaveWork(variable: (String) -> String?) -> Bool {
        func value(_ name: String) -> String? { variable(name).flatMap { $0.isEmpty ? nil : $0 } }
        if value("SSHD_ENABLED") != nil || value("CODE_SERVER_ENABLED") != nil || value("SUPERVISOR_ENABLED") != nil { return true }
        if getuid() == 0 && (value("SSH_PUBLIC_KEY") != nil || value("SSH_PUBLIC_KEY_FILE") != nil) { return true }
        let searchPath = value("PATH") ?? defaultSearchPath
        if isExecutableOnPath("code-server", searchPath: searchPath) || isExecutableOnPath("workspace-supervisor", searchPath: searchPath) { return true }
        return directoryHasEntry(value("BERTH_SERVICES_DIR") ?? "/etc/berth/services.d", suffix: ".toml")
    }

    /// nil when there is nothing to supervise.
    static func plan(environment: [String: String], childEnvironment: [String]?, verbosity: Int) throws(UsageError) -> Plan? {
        let settings = Settings(environment: environment)
        var definitions: [ServiceDefinition] = []
        var notices: [String] = []
        do {
            definitions = try builtIns(settings, notices: &notices) + ServiceFile.loadDirectory(settings.value("BERTH_SERVICES_DIR", default: "/etc/berth/services.d"))
        } catch let error as ServiceFile.LoadError {
            throw UsageError(message: "\(error)")
        } catch let error as SettingError {
            throw UsageError(message: error.message)
        } catch {
            throw UsageError(message: "\(error)")
        }
        guard !definitions.isEmpty else { return nil }
        // Said once, at start, and only when berth supervises something:
        // a plain `berth -- cmd` has no business with either program.
        if verbosity >= 1 {
            for notice in notices { StandardError.write("berth: \(notice)\n") }
        }
        let shutdownTimeout: Duration
        if let text = settings.value("BERTH_SHUTDOWN_TIMEOUT") {
            guard let seconds = NativeFace.parseSeconds(text), seconds > .zero else {
                throw UsageError(message: "BERTH_SHUTDOWN_TIMEOUT='\(text)': expected seconds, like 8")
            }
            shutdownTimeout = seconds
        } else {
            // Inside docker stop's default 10 s, with room to spare.
            shutdownTimeout = .seconds(8)
        }
        var inherited = Dictionary(uniqueKeysWithValues: (childEnvironment ?? environment.map { "\($0.key)=\($0.value)" }).compactMap { line -> (String, String)? in
            guard let equals = line.firstIndex(of: "=") else { return nil }
            return (String(line[..<equals]), String(line[line.index(after: equals)...]))
        })
        inherited["NOTIFY_SOCKET"] = nil
        // The platform's credentials reach the workspace supervisor alone,
        // and only as files (see SupervisorCredentials).
        for name in CommandIdentity.platformSecrets { inherited[name] = nil; inherited[name + "_FILE"] = nil }
        // Check dependencies and cycles now: a bad file stops berth
        // before anything starts, naming the service.
        do {
            _ = try Supervisor.order(definitions)
        } catch {
            throw UsageError(message: "\(error)")
        }
        let runDirectory = settings.value("BERTH_RUN_DIR", default: "/run/berth")
        let workspaceUser = try? UserAccount.lookup(settings.value("BERTH_USER", default: "dev8"))
        let supervision = Supervision(definitions: definitions, inherited: inherited, secrets: environment, runDirectory: runDirectory,
                                      workspaceUser: workspaceUser, verbosity: verbosity, shutdownTimeout: shutdownTimeout)
        return Plan(supervision: supervision)
    }

    /// sshd when openssh-server is installed, berth is root and a key is
    /// set (the sshd step's conditions: without them it could not start or
    /// nobody could log in); code-server and workspace-supervisor when
    /// installed. SSHD_ENABLED, CODE_SERVER_ENABLED, SUPERVISOR_ENABLED=0
    /// turn each off.
    /// `notices` gets a line for each wanted program that is not
    /// installed, naming the variable that switches it off.
    static func builtIns(_ settings: Settings, notices: inout [String]) throws(SettingError) -> [ServiceDefinition] {
        var definitions: [ServiceDefinition] = []
        if try settings.boolean("SSHD_ENABLED", default: true), getuid() == 0, access("/usr/sbin/sshd", X_OK) == 0, settings.isSet("SSH_PUBLIC_KEY") {
            let port = Int(settings.value("SSH_PORT", default: "2222")) ?? 2222
            var sshd = ServiceDefinition(name: "sshd", command: ["/usr/sbin/sshd", "-D", "-e"])
            sshd.readiness = .tcp(port: port)
            sshd.readinessTimeout = .seconds(30)
            definitions.append(sshd)
        }
        // code-server and the workspace supervisor run as the workspace
        // user when berth is root (as berth's own user otherwise). Looked
        // for first: the usual `berth -- cmd` reads no passwd file.
        var codeServer: String?
        if try settings.boolean("CODE_SERVER_ENABLED", default: true) {
            codeServer = findExecutable("code-server", settings: settings)
            if codeServer == nil { notices.append(notInstalled("code-server", "CODE_SERVER_ENABLED")) }
        }
        var daemon: String?
        if try settings.boolean("SUPERVISOR_ENABLED", default: true) {
            daemon = findExecutable("workspace-supervisor", settings: settings)
            if daemon == nil { notices.append(notInstalled("workspace-supervisor", "SUPERVISOR_ENABLED")) }
        }
        guard codeServer != nil || daemon != nil else { return definitions }
        let user: UserAccount?
        if getuid() == 0 {
            let name = settings.value("BERTH_USER", default: "dev8")
            guard let found = try? UserAccount.lookup(name) else { return definitions }
            user = found
        } else {
            user = nil
        }
        if let codeServer {
            let home = user?.home ?? settings.value("HOME", default: "/")
            var definition = ServiceDefinition(name: "code-server", command: [
                codeServer, "--config", home + "/.config/code-server/config.yaml", settings.value("WORKSPACE_DIR", default: "/workspace"),
            ])
            definition.user = user?.name
            let bind = settings.value("CODE_SERVER_BIND", default: "0.0.0.0:8080")
            definition.readiness = .tcp(port: bind.split(separator: ":").last.flatMap { Int($0) } ?? 8080)
            definitions.append(definition)
        }
        if let daemon {
            do {
                definitions.append(try workspaceSupervisor(daemon, settings: settings))
            } catch {
                // Said even when nothing else is supervised: it was wanted
                // and installed, and the image lacks what makes it safe.
                StandardError.write("berth: workspace-supervisor: not started: \(error.message)\n")
            }
        }
        return definitions
    }

    private static func notInstalled(_ name: String, _ variable: String) -> String {
        "\(name) is not installed (not on PATH): not started; \(variable)=0 says it is not wanted"
    }

    /// The workspace supervisor holds the platform's credentials, so it
    /// never runs as the workspace user (who could read its environment,
    /// signal or trace it): as root, berth runs it as a system user of its
    /// own (SUPERVISOR_USER), with no_new_privs and only CAP_DAC_READ_SEARCH
    /// (to read the whole workspace for backups) when the container grants
    /// it, and hands it the credentials as files only that user can read.
    static func workspaceSupervisor(_ daemon: String, settings: Settings) throws(SettingError) -> ServiceDefinition {
        var definition = ServiceDefinition(name: "workspace-supervisor", command: [daemon])
        definition.noNewPrivileges = true
        guard getuid() == 0 else { return definition }
        let name = settings.value("SUPERVISOR_USER", default: "berth-supervisor")
        let workspaceName = settings.value("BERTH_USER", default: "dev8")
        guard let account = try? UserAccount.lookup(name) else {
            let given = CommandIdentity.platformSecrets.filter(settings.isSet)
            throw SettingError("SUPERVISOR_USER=\(name): no such user in /etc/passwd; the workspace supervisor holds the platform's credentials"
                + (given.isEmpty ? "" : " (\(given.joined(separator: ", ")))")
                + " and must not run as root or as the workspace user (add a system user, or SUPERVISOR_ENABLED=0)")
        }
        if account.uid == 0 || account.name == workspaceName {
            throw SettingError("SUPERVISOR_USER=\(name): uid \(account.uid) is root or the workspace user; the workspace supervisor needs a user of its own")
        }
        definition.user = account.name
        // A system user's home is usually /nonexistent.
        definition.workingDirectory = "/"
        definition.ambientCapabilities = 1 << 2  // CAP_DAC_READ_SEARCH
        definition.environment = try SupervisorCredentials.handOver(settings, to: account,
            directory: settings.value("BERTH_RUN_DIR", default: "/run/berth") + "/supervisor")
        return definition
    }
}
