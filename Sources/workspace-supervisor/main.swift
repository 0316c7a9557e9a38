import BerthCore
import BerthProvisioning
import Glibc
import WorkspaceSupervisor

// workspace-supervisor               the daemon (berth supervises it)
// workspace-supervisor list          the snapshots in SUPERVISOR_BACKUP_MOUNT_PATH
// workspace-supervisor restore SNAPSHOT [DIR]
//                                    checks SNAPSHOT's checksum, then unpacks it
//                                    into DIR (default WORKSPACE_DIR)

func fail(_ message: String, status: Int32 = 2) -> Never {
    StandardError.write("workspace-supervisor: \(message)\n")
    exit(status)
}

let arguments = Array(CommandLine.arguments.dropFirst())
let environment = currentEnvironment()
let settings: SupervisorSettings
do {
    settings = try SupervisorSettings.load(environment)
} catch {
    fail(error.message)
}
let loop: EventLoop
do {
    loop = try EventLoop()
} catch {
    fail("cannot start the event loop: \(error)", status: 1)
}

switch arguments.first {
case nil:
    let daemon = Daemon(settings: settings, loop: loop) { StandardError.write("workspace-supervisor: \($0)\n") }
    exit(daemon.run())

case "list":
    guard let backup = settings.backup else { fail("SUPERVISOR_BACKUP_MOUNT_PATH is not set: no snapshots to list") }
    let snapshots = BackupStore(root: backup.mountPath).snapshots()
    print("ID                    CREATED                   BYTES       ENTRIES  SHA256")
    for snapshot in snapshots.reversed() {
        func pad(_ text: String, _ width: Int) -> String { text + String(repeating: " ", count: max(1, width - text.count)) }
        print(pad(snapshot.id, 22) + pad(snapshot.createdAt.iso8601, 26) + pad(String(snapshot.bytes), 12) + pad(String(snapshot.entries), 9)
              + String(snapshot.sha256.prefix(16)))
    }
    exit(0)

case "restore":
    guard arguments.count == 2 || arguments.count == 3 else { fail("usage: workspace-supervisor restore SNAPSHOT [DIR]") }
    let name = arguments[1]
    let directory: String
    if name.contains("/") {
        directory = name
    } else {
        guard let backup = settings.backup else { fail("SUPERVISOR_BACKUP_MOUNT_PATH is not set: give SNAPSHOT as a path") }
        directory = backup.mountPath + "/" + name
    }
    guard let text = readFile(directory + "/manifest.json", limit: 1 << 20), let manifest = SnapshotManifest(json: String(decoding: text, as: UTF8.self)) else {
        fail("\(directory): not a complete snapshot (no readable manifest.json)", status: 1)
    }
    let target = arguments.count == 3 ? arguments[2] : settings.workspaceDirectory
    let archive = directory + "/" + SnapshotManifest.archiveName
    var status: Int32 = 1
    loop.runHelper(HelperCommand(arguments: ["sha256sum", archive], timeout: .seconds(3600))) { sum in
        let hex = String(decoding: sum.standardOutput, as: UTF8.self).split(separator: " ").first.map(String.init)
        guard sum.succeeded, hex == manifest.sha256 else {
            StandardError.write("workspace-supervisor: \(archive): checksum does not match the manifest (\(hex ?? "unreadable")); nothing restored\n")
            return loop.stop()
        }
        if mkdir(target, 0o755) != 0 && errno != EEXIST {
            StandardError.write("workspace-supervisor: \(target): cannot create: \(String(cString: strerror(errno)))\n")
            return loop.stop()
        }
        var extract = HelperCommand(arguments: ["tar", "--extract", "--gzip", "--file", archive, "--directory", target, "--preserve-permissions"],
                                    timeout: .seconds(3600))
        extract.request.workingDirectory = "/"
        loop.runHelper(extract) { result in
            if result.succeeded {
                print("restored \(manifest.id) (\(manifest.entries) entries) into \(target)")
                status = 0
            } else {
                StandardError.write("workspace-supervisor: tar: \(String(decoding: result.standardError, as: UTF8.self))")
            }
            loop.stop()
        }
    }
    loop.run()
    exit(status)

case "-h", "--help", "help":
    print("""
    usage: workspace-supervisor                      run the daemon
           workspace-supervisor list                 list snapshots (newest first)
           workspace-supervisor restore SNAPSHOT [DIR]
    Configuration: WORKSPACE_DIR, SUPERVISOR_* (see berth's README).
    """)
    exit(0)

default:
    fail("unknown command '\(arguments[0])' (commands: list, restore; none runs the daemon)")
}
