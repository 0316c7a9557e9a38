import BerthCore
import Glibc

/// `berth hook-task NAME`: one devcontainer.json hook, in a process berth
/// starts as the workspace user in a session of its own (a set-up task).
/// It reads the user's devcontainer.json (PID 1 never parses the user's
/// files), skips a once-per-workspace hook already run with the same
/// command, runs the command in one of the spec's three forms, and
/// remembers the run in `WORKSPACE_DIR/.berth/hooks/NAME`, in the
/// workspace volume, so a new container on it does not run it again.
/// Its exit status is the hook's: berth reports it, and what the hook left
/// running is found by the session and BERTH_TASK (berth is their reaper).
public enum HookRunner {
    public static func run(task name: String, environment: Environment) -> Int32 {
        if name == "dotfiles" { return dotfiles(environment) }
        guard let hook = LifecycleHook.allCases.first(where: { $0.logName == name }) else {
            say("no such hook: \(name) (hooks: \(LifecycleHook.allCases.map(\.logName).joined(separator: ", ")))")
            return 2
        }
        let settings = Settings(environment)
        let file: DevcontainerFile
        do {
            guard let found = try DevcontainerFile.load(firstOf: DevcontainerFile.candidates(settings)) else {
                say("no devcontainer.json (\(DevcontainerFile.candidates(settings).map(\.path).joined(separator: ", "))): nothing to run")
                return 0
            }
            file = found
        } catch {
            say("\(error); no hook runs")
            return 2
        }
        // Once per start, by the first hook: remoteEnv for the user's
        // sessions, containerEnv said not to apply.
        if hook == DevcontainerPlugin.startHooks.first {
            if let home = environment["HOME"] { RemoteEnvironment.install(file.remoteEnvironment, home: home, from: file.path) }
            if !file.containerEnvironmentNames.isEmpty {
                say("containerEnv (\(file.containerEnvironmentNames.joined(separator: ", "))) is not applied: it is for whoever creates the container, "
                    + "and this one already runs (remoteEnv reaches the user's sessions)")
            }
        }
        guard let command = file.command(hook) else {
            // Not at each SSH session: a line per login would be noise.
            if hook != .postAttach { say("\(file.path) has no \(hook.key)") }
            return 0
        }
        let workspace = settings.value("WORKSPACE_DIR", default: "/workspace")
        let records = HookRecords(workspace: workspace)
        let fingerprint = command.fingerprint
        if hook.rerun == .oncePerWorkspace, environment["BERTH_TASK_FORCED"] != "1", let last = records.read(name), last.fingerprint == fingerprint {
            say("ran for this workspace at \(utcTime(last.started)) (\(last.status)), command unchanged: not again (berth hooks run \(name) runs it)")
            return 0
        }
        let timeout = (try? settings.duration("BERTH_HOOK_TIMEOUT", default: .seconds(1800))) ?? .seconds(1800)
        let started = time(nil)
        let status = HookProcesses.run(command, environment: sessionEnvironment(environment), directory: workspace, timeout: timeout)
        if hook.rerun == .oncePerWorkspace {
            let record = HookRecord(fingerprint: fingerprint, status: status.summary, started: started, ended: time(nil))
            if let problem = records.write(record, name) { say("cannot remember this run in \(records.directory): \(problem)") }
        }
        return status.shellExitCode
    }

    /// The dotfiles task: DotfilesInstaller with the same environment and
    /// time limit as a hook.
    static func dotfiles(_ environment: Environment) -> Int32 {
        let settings = Settings(environment)
        guard let home = environment["HOME"] else {
            say("no HOME: the dotfiles go into the workspace user's home")
            return 2
        }
        do {
            guard let dotfiles = try DotfilesSettings.read(settings, home: home) else { return 0 }
            let timeout = (try? settings.duration("BERTH_HOOK_TIMEOUT", default: .seconds(1800))) ?? .seconds(1800)
            let passed = environment.removing(["DOTFILES_REPO", "DOTFILES_REF", "DOTFILES_INSTALL_COMMAND", "DOTFILES_TARGET"])
            return DotfilesInstaller.run(dotfiles, home: home, environment: sessionEnvironment(passed), scriptTimeout: timeout)
        } catch {
            say(error.message)
            return 2
        }
    }

    /// What the hook runs with: the task's own environment (the services'
    /// variables, the user's HOME, USER, SHELL) without berth's own
    /// task variables. The AI keys an SSH session's shell loads come from
    /// the same env file (see `HookProcesses`).
    static func sessionEnvironment(_ environment: Environment) -> [String] {
        environment.removing(["BERTH_TASK_FORCED", "BERTH_HOOK_TIMEOUT", "BERTH_DEVCONTAINER"]).lines
    }

    /// "2026-12-02 07:12:01 UTC".
    static func utcTime(_ seconds: Int) -> String {
        var time = time_t(seconds)
        var parts = tm()
        var buffer = [CChar](repeating: 0, count: 32)
        guard gmtime_r(&time, &parts) != nil else { return "\(seconds)" }
        let length = strftime(&buffer, buffer.count, "%Y-%m-%d %H:%M:%S UTC", &parts)
        guard length > 0 else { return "\(seconds)" }
        return String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func say(_ line: String) {
        StandardError.write(line + "\n")
    }
}

/// One hook's last run, as remembered in the workspace.
struct HookRecord: Equatable {
    var fingerprint: String
    var status: String
    /// Seconds since the epoch.
    var started: Int
    var ended: Int

    var text: String { "fingerprint \(fingerprint)\nstatus \(status)\nstarted \(started)\nended \(ended)\n" }

    init(fingerprint: String, status: String, started: Int, ended: Int) {
        self.fingerprint = fingerprint
        self.status = status
        self.started = started
        self.ended = ended
    }

    /// nil for anything but the four lines `text` writes.
    init?(text: String) {
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let space = line.firstIndex(of: " ") else { return nil }
            fields[String(line[..<space])] = String(line[line.index(after: space)...])
        }
        guard let fingerprint = fields["fingerprint"], let status = fields["status"],
              let started = fields["started"].flatMap({ Int($0) }), let ended = fields["ended"].flatMap({ Int($0) }) else { return nil }
        self.init(fingerprint: fingerprint, status: status, started: started, ended: ended)
    }
}

/// `WORKSPACE_DIR/.berth/hooks`: the user's own files (the runner is the
/// user), ignored by git through `.berth/.gitignore`.
struct HookRecords {
    let directory: String
    let top: String

    init(workspace: String) {
        top = (workspace.hasSuffix("/") ? String(workspace.dropLast()) : workspace) + "/.berth"
        directory = top + "/hooks"
    }

    func read(_ name: String) -> HookRecord? {
        let fd = open(directory + "/" + name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        guard let bytes = readAll(fd, limit: 4096) else { return nil }
        return HookRecord(text: String(decoding: bytes, as: UTF8.self))
    }

    /// nil, or what went wrong.
    func write(_ record: HookRecord, _ name: String) -> String? {
        do {
            try AtomicFile.ensureDirectory(top, mode: 0o755)
            if access(top + "/.gitignore", F_OK) != 0 {
                _ = try AtomicFile.write(Array("# berth's records of devcontainer.json hooks run in this workspace\n*\n".utf8),
                                         to: top + "/.gitignore", mode: 0o644)
            }
            try AtomicFile.ensureDirectory(directory, mode: 0o755)
            _ = try AtomicFile.write(Array(record.text.utf8), to: directory + "/" + name, mode: 0o644)
            return nil
        } catch {
            return "\(error)"
        }
    }
}
