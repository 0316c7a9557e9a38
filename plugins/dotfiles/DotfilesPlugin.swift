import BerthCore
import BerthSupervision

/// The user's dotfiles repository as a set-up task: cloned into their home
/// with the GitHub credentials provisioning gave git (never in argv or the
/// URL), installed once per home volume and again when DOTFILES_REF
/// changes (DotfilesInstaller), as the workspace user, after provisioning
/// and sshd and before devcontainer.json's hooks.
public struct DotfilesPlugin: Plugin {
    public var name: String { "dotfiles" }
    public var summary: String { "The user's dotfiles repository, cloned into their home and installed, as Codespaces and the devcontainers CLI do." }
    public var variables: [PluginVariable] {
        [
            PluginVariable("DOTFILES_REPO", .option, "`OWNER/NAME` on GitHub (the host of `GH_HOST`/`GITHUB_API_URL`), or an https://, ssh:// or file:// URL (no credentials in it)"),
            PluginVariable("DOTFILES_REF", .option, "the branch, tag or commit; a change installs again"),
            PluginVariable("DOTFILES_INSTALL_COMMAND", .option, """
                run in the clone instead of its first `install.sh`, `install`, `bootstrap.sh`, `bootstrap`, `script/bootstrap`, \
                `setup.sh`, `setup`, `script/setup` (without any: its top-level dotfiles are linked into the home, never over a file of yours)
                """),
            PluginVariable("DOTFILES_TARGET", .option, default: "~/.dotfiles", "where the clone goes, inside the home"),
        ]
    }

    public init() {}

    public func mayHaveWork(_ probe: StartProbe) -> Bool {
        probe.value("DOTFILES_REPO") != nil
    }

    public func tasks(_ context: ServiceContext) throws(SettingError) -> [ServiceDefinition] {
        guard let home = context.workspaceUser?.home, try DotfilesSettings.read(context.settings, home: home) != nil else { return [] }
        let timeout = try context.settings.duration("BERTH_HOOK_TIMEOUT", default: .seconds(1800), in: .seconds(1)...(.seconds(86_400)))
        var task = ServiceDefinition(name: name, command: ["/proc/self/exe", "hook-task", name])
        task.isTask = true
        task.restart = .never
        task.required = false
        task.user = context.runningAsRoot ? context.workspaceUserName : nil
        task.after = ["sshd"]
        task.critical = context.strict
        task.maskedValues = context.secretValues
        task.rerunRule = "once per home, again when DOTFILES_REF changes"
        task.environment["BERTH_HOOK_TIMEOUT"] = "\(timeout.milliseconds)ms"
        for variable in variables.map(\.name) {
            if let value = context.settings.value(variable) { task.environment[variable] = value }
        }
        return [task]
    }
}
