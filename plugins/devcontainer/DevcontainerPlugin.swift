import BerthCore
import BerthSupervision
import Glibc

/// devcontainer.json's life-cycle commands as berth's set-up tasks: one
/// task per hook (onCreate, updateContent, postCreate, postStart), in the
/// spec's order, after provisioning and once sshd is settled, each run as
/// the workspace user by `berth hook-task NAME` — that process, not PID 1,
/// reads the user's file, remembers once-per-workspace hooks in the
/// workspace, and runs the command (HookRunner.swift).
public struct DevcontainerPlugin: Plugin {
    public var name: String { "devcontainer" }
    public var summary: String {
        "devcontainer.json's onCreate, updateContent, postCreate and postStart commands, run as the workspace user after provisioning."
    }
    public var variables: [PluginVariable] {
        [
            PluginVariable("BERTH_DEVCONTAINER", .option, """
                the devcontainer.json to read (relative to `WORKSPACE_DIR`); default `.devcontainer/devcontainer.json`, \
                then `.devcontainer.json`
                """),
            PluginVariable("BERTH_HOOK_TIMEOUT", .option, default: "30m", "one hook's time limit (then SIGTERM, SIGKILL 5 s later)"),
            PluginVariable("BERTH_HOOK_LEFTOVERS", .option, default: "keep", """
                what a hook leaves running when it ends (`cmd &`, `nohup`, `setsid`): `keep` (counted in `berth status`, \
                stopped at shutdown) or `kill`
                """),
        ]
    }

    /// The hooks that run at each start, in the spec's order; postAttach
    /// belongs to each SSH session.
    static let startHooks: [LifecycleHook] = [.onCreate, .updateContent, .postCreate, .postStart]

    public init() {}

    /// Something at one of the two places, or BERTH_DEVCONTAINER: a few
    /// fstatat calls on a plain start.
    public func mayHaveWork(_ probe: StartProbe) -> Bool {
        probe.value("BERTH_DEVCONTAINER") != nil || Self.somethingIsAtADefaultPlace(workspace: probe.value("WORKSPACE_DIR") ?? "/workspace")
    }

    public func tasks(_ context: ServiceContext) throws(SettingError) -> [ServiceDefinition] {
        let settings = context.settings
        guard settings.value("BERTH_DEVCONTAINER") != nil
                || Self.somethingIsAtADefaultPlace(workspace: settings.value("WORKSPACE_DIR", default: "/workspace")) else { return [] }
        let timeout = try settings.duration("BERTH_HOOK_TIMEOUT", default: .seconds(1800), in: .seconds(1)...(.seconds(86_400)))
        let leftoversText = settings.value("BERTH_HOOK_LEFTOVERS", default: "keep")
        guard let leftovers = ServiceDefinition.LeftoverPolicy(rawValue: leftoversText) else {
            throw SettingError("BERTH_HOOK_LEFTOVERS='\(leftoversText)': expected keep or kill")
        }
        var tasks: [ServiceDefinition] = []
        var previous: String?
        let masked = context.secretValues
        for hook in Self.startHooks {
            var task = ServiceDefinition(name: hook.logName, command: ["/proc/self/exe", "hook-task", hook.logName])
            task.isTask = true
            task.restart = .never
            task.required = false
            // As root: as the workspace user; otherwise berth is that user.
            task.user = context.runningAsRoot ? context.workspaceUserName : nil
            task.workingDirectory = settings.value("WORKSPACE_DIR", default: "/workspace")
            task.after = previous.map { [$0] } ?? ["dotfiles", "sshd"]
            task.leftovers = leftovers
            task.rerunRule = hook.rerun.description
            task.critical = context.strict
            task.maskedValues = masked
            task.environment = [
                "WORKSPACE_DIR": settings.value("WORKSPACE_DIR", default: "/workspace"),
                "BERTH_HOOK_TIMEOUT": "\(timeout.milliseconds)ms",
            ]
            if let named = settings.value("BERTH_DEVCONTAINER") { task.environment["BERTH_DEVCONTAINER"] = named }
            tasks.append(task)
            previous = task.name
        }
        // postAttach: at each new SSH session (sshd's /etc/ssh/sshrc asks
        // with `berth hooks attached`), after postStart, never blocking it.
        var attach = tasks[tasks.count - 1]
        attach.name = LifecycleHook.postAttach.logName
        attach.command = ["/proc/self/exe", "hook-task", attach.name]
        attach.after = [tasks[tasks.count - 1].name]
        attach.runsWhenAsked = true
        attach.rerunRule = LifecycleHook.postAttach.rerun.description
        tasks.append(attach)
        return tasks
    }

    /// `.devcontainer/devcontainer.json` or `.devcontainer.json` below the
    /// workspace, looked at as root without following a symlink: a link
    /// (at either name, or `.devcontainer` itself) counts as there, and the
    /// task resolves it as the user. Following it would tell the user,
    /// through whether tasks show up, whether a path only root can see
    /// exists. WORKSPACE_DIR itself is the platform's and is followed.
    static func somethingIsAtADefaultPlace(workspace: String) -> Bool {
        let top = open(workspace, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard top >= 0 else { return false }
        defer { close(top) }
        var info = stat()
        if fstatat(top, ".devcontainer.json", &info, AT_SYMLINK_NOFOLLOW) == 0 { return true }
        guard fstatat(top, ".devcontainer", &info, AT_SYMLINK_NOFOLLOW) == 0 else { return false }
        guard info.st_mode & S_IFMT == S_IFDIR else { return true }
        let directory = openat(top, ".devcontainer", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard directory >= 0 else { return true }
        defer { close(directory) }
        return fstatat(directory, "devcontainer.json", &info, AT_SYMLINK_NOFOLLOW) == 0
    }
}
