import BerthCore
import BerthPlugins
import BerthSupervision
import Glibc

/// The services berth's own face supervises: the registry's built-in ones
/// that are wanted here (each plugin decides, and says why not) and the
/// image's own from BERTH_SERVICES_DIR.
enum NativeServices {
    /// The services on berth's loop, with their control socket.
    final class Supervision: InitPolicy.Supervision {
        let definitions: [ServiceDefinition]
        /// What services inherit (no provisioning secrets).
        let inherited: Environment
        /// The environment as berth received it: what `pass_secrets` names
        /// are taken from.
        let secrets: Environment
        let runDirectory: String
        let workspaceUser: UserAccount?
        let verbosity: Int
        let shutdownTimeout: Duration
        private var supervisor: Supervisor?

        init(definitions: [ServiceDefinition], inherited: Environment, secrets: Environment, runDirectory: String,
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

    /// nil when there is nothing to supervise. `inherited`: what every
    /// child of berth inherits (Configuration.inheritedByChildren).
    static func plan(_ configuration: Configuration, inherited: Environment?, verbosity: Int) throws(UsageError) -> (any InitPolicy.Supervision)? {
        guard let environment = configuration.environment else { return nil }
        let context = ServiceContext(settings: Settings(environment), workspaceUserName: configuration.workspaceUserName,
                                     runDirectory: configuration.runDirectory, shutdownTimeout: configuration.shutdownTimeout,
                                     strict: configuration.strict)
        var definitions: [ServiceDefinition] = []
        do {
            for plugin in registry {
                do {
                    if let definition = try plugin.service(context) { definitions.append(definition) }
                    for var task in try plugin.tasks(context) {
                        // Order among what is planned here: no sshd, no wait for it.
                        task.after = task.after.filter { name in definitions.contains { $0.name == name } }
                        definitions.append(task)
                    }
                } catch {
                    // A plugin's bad setting stops its own service, not
                    // berth: the container stays up, `berth status` and
                    // `berth health` name the variable (as its step's
                    // failure does), and the user can look inside.
                    var refused = ServiceDefinition(name: plugin.name, command: ["/bin/false"])
                    refused.refusal = error.message
                    definitions.append(refused)
                }
            }
            definitions += try ServiceFile.loadDirectory(configuration.servicesDirectory)
        } catch {
            throw UsageError(message: "\(error)")
        }
        guard !definitions.isEmpty else { return nil }
        // Said once, at start, and only when berth supervises something:
        // a plain `berth -- cmd` has no business with either program.
        if verbosity >= 1 {
            for notice in context.notices { StandardError.write("berth: \(notice)\n") }
        }
        // Check dependencies and cycles now: a bad file stops berth
        // before anything starts, naming the service.
        do {
            _ = try Supervisor.order(definitions)
        } catch {
            throw UsageError(message: "\(error)")
        }
        return Supervision(definitions: definitions, inherited: inherited ?? environment, secrets: environment,
                           runDirectory: configuration.runDirectory, workspaceUser: context.workspaceUser, verbosity: verbosity,
                           shutdownTimeout: configuration.shutdownTimeout)
    }
}
