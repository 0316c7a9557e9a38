import BerthCore
import BerthSupervision
import Glibc

/// workspace-supervisor: the workspace's own daemon (activity reports,
/// status API, backups) as a service of its own user, holding the
/// platform's credentials as files nobody else can read.
public struct WorkspaceSupervisorPlugin: Plugin {
    public var name: String { "workspace-supervisor" }
    public var summary: String { "The workspace supervisor daemon (activity, reports, status API, backups), run as a system user of its own." }
    public var variables: [PluginVariable] {
        [
            PluginVariable("SUPERVISOR_ENABLED", .serviceSwitch, default: "1", "0 turns the workspace supervisor off"),
            PluginVariable("SUPERVISOR_USER", .option, default: "berth-supervisor", "the system user it runs as (never root or the workspace user)"),
            PluginVariable("WORKSPACE_DIR", .option, default: "/workspace", "what is backed up"),
            PluginVariable("SUPERVISOR_MONITOR_INTERVAL", .option, default: "30s", "activity poll"),
            PluginVariable("SUPERVISOR_IDE_PORT", .option, default: "`CODE_SERVER_BIND`'s port", "the IDE port whose connections count as activity"),
            PluginVariable("SUPERVISOR_SSH_PORT", .option, default: "`SSH_PORT`", "the SSH port whose connections count as activity"),
            PluginVariable("SUPERVISOR_HTTP_ENABLED", .option, default: "true", "the status API"),
            PluginVariable("SUPERVISOR_HTTP_ADDR", .option, default: "127.0.0.1:9000", """
                HOST:PORT, `[IPv6]:PORT` or `:PORT`; addresses, not names. A non-loopback address needs `SUPERVISOR_HTTP_TOKEN`
                """),
            PluginVariable(PlatformCredential.httpToken.rawValue, .credential, """
                when set, every API request needs `Authorization: Bearer TOKEN` (16+ printable characters, compared in constant time)
                """),
            PluginVariable("SUPERVISOR_AGENT_ENABLED", .option, default: "false", "send activity reports"),
            PluginVariable("SUPERVISOR_AGENT_BASE_URL", .option, "the control plane (needed when reports are on)"),
            PluginVariable("ENVIRONMENT_ID", .option, "this workspace's id (needed when reports are on)"),
            PluginVariable(PlatformCredential.agentAPIKey.rawValue, .credential, "bearer key for the reports"),
            PluginVariable("SUPERVISOR_AGENT_TIMEOUT", .option, default: "5s", "one report's time limit"),
            PluginVariable("SUPERVISOR_AGENT_HEARTBEAT_INTERVAL", .option, default: "60s", "report interval while nothing changes"),
            PluginVariable("SUPERVISOR_BACKUP_MOUNT_PATH", .option, """
                the backup mount: restic's repository (`restic/`) and, without `SUPERVISOR_BACKUP_PASSWORD`, its generated password; unset: no backups
                """),
            PluginVariable(PlatformCredential.backupPassword.rawValue, .credential, """
                the repositories' password (restic encrypts with it); needed with a remote repository. Unset with the mount alone:                 generated once into the mount (0400, the supervisor's), so whoever holds the volume holds the key
                """),
            PluginVariable("BACKUP_ENABLED", .option, """
                the original images' switch: `false` turns backups off whatever else is set; `true` without \
                `SUPERVISOR_BACKUP_MOUNT_PATH` backs up to `/backups`
                """),
            PluginVariable("SUPERVISOR_BACKUP_INTERVAL", .option, default: "15m", "time between backups"),
            PluginVariable("SUPERVISOR_BACKUP_EXCLUDES", .option, "comma-separated restic exclude patterns; a bare name matches anywhere (`node_modules,.cache,target`)"),
            PluginVariable("SUPERVISOR_BACKUP_SYNC_ON_ACTIVITY", .option, default: "true", "also back up when the last connection closes"),
            PluginVariable("SUPERVISOR_BACKUP_KEEP", .option, default: "7", "snapshots kept (restic's `forget --keep-last`, in each repository)"),
            PluginVariable("SUPERVISOR_BACKUP_MAX_AGE", .option, "drop snapshots older than this, to the hour (the newest always stays)"),
            PluginVariable("SUPERVISOR_BACKUP_CHECK_INTERVAL", .option, default: "24h", """
                how often each repository's integrity is checked (`restic check`, after a backup; also the first backup after a start)
                """),
            PluginVariable("SUPERVISOR_BACKUP_SHUTDOWN_BUDGET", .option, default: "`BERTH_SHUTDOWN_TIMEOUT` less 3s (5s)", """
                at shutdown, after the command and the user's services stopped: the time for a last backup when the workspace \
                changed since the last snapshot (past it restic stops and the previous snapshot stands); 0 turns it off. \
                Never more than berth's timeout allows
                """),
            PluginVariable("SUPERVISOR_BACKUP_S3_URL", .option, "`ENDPOINT/BUCKET[/PREFIX]`: a restic repository in S3 or an S3-compatible store"),
            PluginVariable("AWS_S3_BUCKET", .option, """
                the original images' bucket: the same as `SUPERVISOR_BACKUP_S3_URL=https://s3.REGION.amazonaws.com/BUCKET` (set one of them)
                """),
            PluginVariable("SUPERVISOR_BACKUP_S3_REGION", .option, default: "`AWS_REGION` or us-east-1", "the bucket's region"),
            PluginVariable("AWS_REGION", .option, default: "us-east-1", "the region of `AWS_S3_BUCKET` and S3's signatures"),
            PluginVariable("AWS_ACCESS_KEY_ID", .option, "S3 access key id"),
            PluginVariable(PlatformCredential.awsSecretAccessKey.rawValue, .credential, "S3 secret key"),
            PluginVariable(PlatformCredential.azureSASURL.rawValue, .credential, """
                `https://ACCOUNT.blob.core.windows.net/CONTAINER?SAS`: a restic repository in that container
                """),
            PluginVariable("AZURE_BLOB_ACCOUNT_NAME", .option, """
                the original images' Azure target, with `AZURE_BLOB_ACCOUNT_KEY` and `AZURE_BLOB_CONTAINER` (all three): a restic \
                repository in that container, reached with the account key
                """),
            PluginVariable("AZURE_BLOB_CONTAINER", .option, "the container (see `AZURE_BLOB_ACCOUNT_NAME`)"),
            PluginVariable(PlatformCredential.azureAccountKey.rawValue, .credential, "the account key, base64 as Azure shows it"),
        ]
    }
    static let program = "workspace-supervisor"

    public init() {}

    /// Switched, or installed: its credentials alone do not start it.
    public func mayHaveWork(_ probe: StartProbe) -> Bool {
        probe.value("SUPERVISOR_ENABLED") != nil || probe.isInstalled(Self.program)
    }

    /// The daemon holds the platform's credentials, so it never runs as the
    /// workspace user (who could read its environment, signal or trace
    /// it): as root, berth runs it as a system user of its own
    /// (SUPERVISOR_USER), with no_new_privs and only CAP_DAC_READ_SEARCH
    /// (to read the whole workspace for backups) when the container grants
    /// it, and hands it the credentials as files only that user can read.
    public func service(_ context: ServiceContext) throws(SettingError) -> ServiceDefinition? {
        let settings = context.settings
        guard try settings.boolean("SUPERVISOR_ENABLED", default: true) else { return nil }
        guard let program = findExecutable(Self.program, settings: settings) else {
            context.noticeNotInstalled(Self.program, switchedBy: "SUPERVISOR_ENABLED")
            return nil
        }
        do {
            return try definition(program, context)
        } catch {
            // Said even when nothing else is supervised: it was wanted and
            // installed, and the image lacks what makes it safe.
            StandardError.write("berth: workspace-supervisor: not started: \(error.message)\n")
            return nil
        }
    }

    private func definition(_ program: String, _ context: ServiceContext) throws(SettingError) -> ServiceDefinition {
        let settings = context.settings
        var definition = ServiceDefinition(name: name, command: [program])
        definition.noNewPrivileges = true
        try planLastBackup(&definition, context)
        guard context.runningAsRoot else { return definition }
        let userName = settings.value("SUPERVISOR_USER", default: "berth-supervisor")
        guard let account = try? UserAccount.lookup(userName) else {
            let given = PlatformCredential.names.filter(settings.isSet)
            throw SettingError("SUPERVISOR_USER=\(userName): no such user in /etc/passwd; the workspace supervisor holds the platform's credentials"
                + (given.isEmpty ? "" : " (\(given.joined(separator: ", ")))")
                + " and must not run as root or as the workspace user (add a system user, or SUPERVISOR_ENABLED=0)")
        }
        if account.uid == 0 || account.name == context.workspaceUserName {
            throw SettingError("SUPERVISOR_USER=\(userName): uid \(account.uid) is root or the workspace user; the workspace supervisor needs a user of its own")
        }
        definition.user = account.name
        // A system user's home is usually /nonexistent.
        definition.workingDirectory = "/"
        definition.ambientCapabilities = 1 << 2  // CAP_DAC_READ_SEARCH
        definition.environment.merge(try SupervisorCredentials.handOver(settings, to: account, directory: context.runDirectory + "/supervisor")) { $1 }
        return definition
    }

    /// What restic needs to stop cleanly after the budget (SIGINT, its lock
    /// removed), and what the other stages need: the command and the
    /// user's services before, sshd after.
    static let stopMargin: Duration = .seconds(2)
    static let otherStages: Duration = .seconds(1)

    /// The supervisor stops after the user's services (its last backup
    /// sees their last writes) and before sshd, with a budget for that
    /// backup that fits BERTH_SHUTDOWN_TIMEOUT: the timeout less the
    /// other stages' share and restic's stop, SUPERVISOR_BACKUP_SHUTDOWN_BUDGET
    /// when that is shorter. Its stop grace is that budget and restic's stop.
    private func planLastBackup(_ definition: inout ServiceDefinition, _ context: ServiceContext) throws(SettingError) {
        let fits = max(.zero, context.shutdownTimeout - Self.stopMargin - Self.otherStages)
        let asked = try context.settings.duration("SUPERVISOR_BACKUP_SHUTDOWN_BUDGET", default: fits, in: .zero...(.seconds(3600)))
        let budget = min(asked, fits)
        definition.stopStage = .afterServices
        definition.stopGrace = budget + Self.stopMargin
        definition.environment["SUPERVISOR_BACKUP_SHUTDOWN_BUDGET"] = "\(budget.milliseconds)ms"
    }
}
