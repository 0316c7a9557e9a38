import BerthCore
import CBerth
import Glibc
import WorkspaceSupervisor

// workspace-supervisor               the daemon (berth supervises it)
// workspace-supervisor list          the snapshots in the repositories (the
//                                    mount's, then the remote one)
// workspace-supervisor restore SNAPSHOT|latest [DIR]
//                                    checks the mount and the snapshot's
//                                    listing, then unpacks it into DIR (default
//                                    WORKSPACE_DIR), as BERTH_USER when root

func fail(_ message: String, status: Int32 = 2) -> Never {
    StandardError.write("workspace-supervisor: \(message)\n")
    exit(status)
}

// Before anything can hold a secret: no ptrace, no core dump, and
// /proc/PID/environ|mem closed even to processes of our own uid.
let undumpable = ProcessHardening.disableDumping()
let arguments = Array(CommandLine.arguments.dropFirst())
let environment = currentEnvironment()
let settings: SupervisorSettings
do {
    settings = try SupervisorSettings.load(environment)
} catch {
    ProcessHardening.scrubEnvironment(SupervisorSettings.secretVariableNames)
    fail(error.message)
}
// Loaded: no credential stays in our environment (nor in the initial block
// /proc/PID/environ shows), whatever started us with it.
ProcessHardening.scrubEnvironment(SupervisorSettings.secretVariableNames)
if !undumpable { StandardError.write("workspace-supervisor: warning: prctl(PR_SET_DUMPABLE, 0) failed: \(String(cString: strerror(errno)))\n") }
for warning in settings.warnings { StandardError.write("workspace-supervisor: warning: \(warning)\n") }

switch arguments.first {
case nil:
    let loop: EventLoop
    do {
        loop = try EventLoop()
    } catch {
        fail("cannot start the event loop: \(error)", status: 1)
    }
    // Run by berth as a user of its own, the daemon reads the workspace
    // through CAP_DAC_READ_SEARCH; Docker does not grant it by default.
    if settings.backup != nil, getuid() != 0, berth_permitted_capabilities() & (1 << 2) == 0 {
        StandardError.write("workspace-supervisor: warning: no CAP_DAC_READ_SEARCH: backups of \(settings.workspaceDirectory) hold only what uid \(getuid()) may read, "
                            + "and fail on what it may not (docker run --cap-add DAC_READ_SEARCH)\n")
    }
    let daemon = Daemon(settings: settings, loop: loop) { StandardError.write("workspace-supervisor: \($0)\n") }
    exit(daemon.run())

case "list", "restore":
    guard let backup = settings.backup else { fail("SUPERVISOR_BACKUP_MOUNT_PATH is not set: no backups") }
    let commands: RepositoryCommands
    do {
        commands = try RepositoryCommands.plan(backup, environment: environment, restoring: arguments[0] == "restore")
    } catch {
        fail(error.description, status: 1)
    }
    if arguments[0] == "list" {
        guard arguments.count == 1 else { fail("usage: workspace-supervisor list") }
        func pad(_ text: String, _ width: Int) -> String { text + String(repeating: " ", count: max(1, width - text.count)) }
        print("ID        TIME                            REPOSITORY")
        var failed = false
        for (repository, listed) in commands.list() {
            switch listed {
            case .success(let snapshots):
                for snapshot in snapshots.reversed() { print(pad(snapshot.shortID, 10) + pad(snapshot.time, 32) + repository.kind.rawValue) }
            case .failure(let failure):
                StandardError.write("workspace-supervisor: \(failure)\n")
                failed = true
            }
        }
        exit(failed ? 1 : 0)
    }
    guard arguments.count == 2 || arguments.count == 3 else { fail("usage: workspace-supervisor restore SNAPSHOT|latest [DIR]") }
    let target = arguments.count == 3 ? arguments[2] : settings.workspaceDirectory
    do {
        let (snapshot, kind) = try commands.restore(arguments[1], into: target)
        print("restored \(snapshot.shortID) from the \(kind.rawValue) repository into \(target)" + (commands.extractAs.map { " as \($0.name)" } ?? ""))
        exit(0)
    } catch {
        fail(error.description, status: 1)
    }

case "-h", "--help", "help":
    print("""
    usage: workspace-supervisor                      run the daemon
           workspace-supervisor list                 list snapshots (newest first), the mount's then the remote's
           workspace-supervisor restore SNAPSHOT|latest [DIR]
    Configuration: WORKSPACE_DIR, SUPERVISOR_* (see berth's README).
    """)
    exit(0)

default:
    fail("unknown command '\(arguments[0])' (commands: list, restore; none runs the daemon)")
}
