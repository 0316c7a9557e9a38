import BerthCore
import Glibc

/// The daemon's configuration, from the variables the workspace images
/// already use. Everything is checked at start: a value that does not parse
/// is an error naming the variable, never a silent default.
public struct SupervisorSettings: Sendable {
    public var workspaceDirectory = "/workspace"
    public var monitorInterval: Duration = .seconds(30)
    public var httpEnabled = true
    public var httpAddress = "127.0.0.1:9000"
    public var idePort = 8080
    public var sshPort = 2222
    public var agent: Agent?
    public var backup: Backup?
    /// Required as `Authorization: Bearer TOKEN` on every request when set.
    public var httpToken: Secret?
    /// Lines to log at start: credential files others can read.
    public var warnings: [String] = []

    public struct Agent: Sendable {
        public var baseURL: String
        public var environmentID: String
        public var apiKey: Secret?
        public var timeout: Duration
        /// An idle-timeout consumer must hear from an idle workspace too.
        public var heartbeat: Duration
        public var activityURL: String { baseURL + "/api/v1/environments/" + environmentID + "/activity" }
    }

    public struct Backup: Sendable {
        public var mountPath: String
        public var interval: Duration
        public var excludes: [String]
        public var syncOnActivity: Bool
        public var keepLast: Int
        public var maxAge: Duration?
        /// How often the repositories' integrity is checked (`restic check`),
        /// after a backup.
        public var checkInterval: Duration = .seconds(86_400)
        /// SIGTERM: the time for a last backup when the workspace changed
        /// since the last snapshot (zero: none, a running one is aborted).
        /// berth sets it to fit its own shutdown timeout.
        public var shutdownBudget: Duration = .seconds(5)
        /// SUPERVISOR_BACKUP_PASSWORD: the repositories' password; nil:
        /// the mount's generated one (mount-only).
        public var password: Secret?
        /// The repository in object storage, when one is set.
        public var remote: RemoteRepository?
    }

    /// S3 (or an S3-compatible store) or Azure Blob Storage, as restic
    /// names it, with what restic needs to reach it.
    public struct RemoteRepository: Sendable {
        public var kind: ResticRepository.Kind
        /// `s3:ENDPOINT/BUCKET[/PREFIX]` or `azure:CONTAINER:/`.
        public var location: String
        /// The variable it came from, for errors.
        public var source: String
        /// restic's environment: AWS_* or AZURE_* (with keys).
        public var credentials: [String]
    }

    public init() {}

    /// Every credential the daemon reads: loaded only through this list
    /// (`secret(_:_:)`), and the same list is removed from its environment
    /// once loaded (`ProcessHardening.scrubEnvironment`).
    public typealias SecretVariable = PlatformCredential

    public static var secretVariableNames: [String] { PlatformCredential.names }

    /// NAME or NAME_FILE; a file that group or others may read earns a
    /// warning (berth's are 0400 in a 0700 directory of the supervisor's user).
    static func secret(_ settings: Settings, _ variable: SecretVariable, warnings: inout [String]) throws(SettingError) -> Secret? {
        let value = try settings.secret(variable.rawValue)
        if value != nil, let file = settings.value(variable.rawValue + "_FILE") {
            var info = stat()
            if stat(file, &info) == 0, info.st_mode & 0o044 != 0 {
                warnings.append("\(variable.rawValue)_FILE=\(file): readable by others (mode \(String(info.st_mode & 0o7777, radix: 8))): "
                                + "the workspace user may read it; make it 0400 and owned by the supervisor's user")
            }
        }
        return value
    }

    public static func load(_ environment: [String: String]) throws(SettingError) -> SupervisorSettings {
        let settings = Settings(environment: environment)
        var loaded = SupervisorSettings()
        var warnings: [String] = []
        loaded.workspaceDirectory = settings.value("WORKSPACE_DIR", default: "/workspace")
        // tar is started in the snapshot's directory and told -C WORKSPACE_DIR.
        guard loaded.workspaceDirectory.hasPrefix("/") else {
            throw SettingError("WORKSPACE_DIR='\(loaded.workspaceDirectory)': expected an absolute path")
        }
        loaded.monitorInterval = try duration(settings, "SUPERVISOR_MONITOR_INTERVAL", default: .seconds(30))
        loaded.httpEnabled = try settings.boolean("SUPERVISOR_HTTP_ENABLED", default: true)
        loaded.httpAddress = settings.value("SUPERVISOR_HTTP_ADDR", default: "127.0.0.1:9000")
        if let token = try secret(settings, .httpToken, warnings: &warnings) {
            guard token.bytes.count >= 16, !token.bytes.contains(where: { $0 < 0x21 || $0 == 0x7f }) else {
                throw SettingError("SUPERVISOR_HTTP_TOKEN: must be one word of 16 or more printable characters")
            }
            loaded.httpToken = token
        }
        // The ports as berth's sshd and code-server plugins read them (one
        // parser each, in BerthCore), unless given outright.
        loaded.idePort = try settings.port("SUPERVISOR_IDE_PORT", default: try settings.hostAndPort("CODE_SERVER_BIND", default: "0.0.0.0:8080").port)
        loaded.sshPort = try settings.port("SUPERVISOR_SSH_PORT", default: try settings.port("SSH_PORT", default: 2222))

        if try settings.boolean("SUPERVISOR_AGENT_ENABLED", default: false) {
            guard let base = settings.value("SUPERVISOR_AGENT_BASE_URL"), !base.isEmpty else {
                throw SettingError("SUPERVISOR_AGENT_BASE_URL is not set: SUPERVISOR_AGENT_ENABLED needs the control plane's URL")
            }
            guard base.hasPrefix("http://") || base.hasPrefix("https://"), !base.contains(where: { $0 == " " || $0 == "\n" }) else {
                throw SettingError("SUPERVISOR_AGENT_BASE_URL='\(base)': expected an http:// or https:// URL")
            }
            guard let id = settings.value("ENVIRONMENT_ID"), !id.isEmpty else {
                throw SettingError("ENVIRONMENT_ID is not set: SUPERVISOR_AGENT_ENABLED needs it for the report URL")
            }
            guard id.utf8.allSatisfy({ isalnum(Int32($0)) != 0 || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") }) else {
                throw SettingError("ENVIRONMENT_ID='\(id)': letters, digits, '-', '_' and '.' only (it goes into a URL path)")
            }
            let key = try secret(settings, .agentAPIKey, warnings: &warnings)
            if let key, key.bytes.contains(where: { $0 < 0x21 || $0 == 0x7f }) {
                throw SettingError("SUPERVISOR_AGENT_API_KEY: must be one word of printable characters")
            }
            loaded.agent = Agent(baseURL: base.hasSuffix("/") ? String(base.dropLast()) : base, environmentID: id, apiKey: key,
                                 timeout: try duration(settings, "SUPERVISOR_AGENT_TIMEOUT", default: .seconds(5)),
                                 heartbeat: try duration(settings, "SUPERVISOR_AGENT_HEARTBEAT_INTERVAL", default: .seconds(60)))
        }

        // The original images' switch: false turns backups off whatever
        // else is set; true without a mount path backs up to /backups (the
        // base image's folder for that volume).
        let backupsWanted = try settings.value("BACKUP_ENABLED").map { text throws(SettingError) in try Settings.boolean(text, variable: "BACKUP_ENABLED") }
        let mountPath = backupsWanted == false ? nil : settings.value("SUPERVISOR_BACKUP_MOUNT_PATH") ?? (backupsWanted == true ? "/backups" : nil)
        if let mount = mountPath, !mount.isEmpty {
            guard mount.hasPrefix("/") else { throw SettingError("SUPERVISOR_BACKUP_MOUNT_PATH='\(mount)': expected an absolute path") }
            let keepText = settings.value("SUPERVISOR_BACKUP_KEEP", default: "7")
            guard let keep = Int(keepText), keep >= 1 else {
                throw SettingError("SUPERVISOR_BACKUP_KEEP='\(keepText)': expected a whole number of snapshots, 1 or more")
            }
            loaded.backup = Backup(mountPath: mount,
                                   interval: try duration(settings, "SUPERVISOR_BACKUP_INTERVAL", default: .seconds(15 * 60)),
                                   excludes: commaSeparated(settings.value("SUPERVISOR_BACKUP_EXCLUDES")),
                                   syncOnActivity: try settings.boolean("SUPERVISOR_BACKUP_SYNC_ON_ACTIVITY", default: true),
                                   keepLast: keep,
                                   maxAge: try settings.value("SUPERVISOR_BACKUP_MAX_AGE").map { text throws(SettingError) in
                                       try parse(text, "SUPERVISOR_BACKUP_MAX_AGE")
                                   })
            loaded.backup?.checkInterval = try duration(settings, "SUPERVISOR_BACKUP_CHECK_INTERVAL", default: .seconds(86_400))
            if let text = settings.value("SUPERVISOR_BACKUP_SHUTDOWN_BUDGET") {
                loaded.backup?.shutdownBudget = try Settings.duration(text, variable: "SUPERVISOR_BACKUP_SHUTDOWN_BUDGET", in: .zero...(.seconds(3600)))
            }
            loaded.backup?.remote = try remoteRepository(settings, warnings: &warnings)
            loaded.backup?.password = try secret(settings, .backupPassword, warnings: &warnings)
            if let remote = loaded.backup?.remote, loaded.backup?.password == nil {
                throw SettingError("SUPERVISOR_BACKUP_PASSWORD is not set: the repository \(remote.source) names is encrypted with it, "
                                   + "and it must not live beside the copy (set it, or SUPERVISOR_BACKUP_PASSWORD_FILE)")
            }
        }
        loaded.warnings = warnings
        return loaded
    }

    /// The remote repository: S3 (SUPERVISOR_BACKUP_S3_URL, or the original
    /// images' AWS_S3_BUCKET) or Azure (a container SAS URL, or the original
    /// images' account name, key and container); at most one.
    static func remoteRepository(_ settings: Settings, warnings: inout [String]) throws(SettingError) -> RemoteRepository? {
        var found: [RemoteRepository] = []
        if let s3 = try s3Repository(settings, warnings: &warnings) { found.append(s3) }
        if let azure = try azureRepository(settings, warnings: &warnings) { found.append(azure) }
        guard found.count < 2 else {
            throw SettingError("\(found.map(\.source).joined(separator: " and ")) are both set: backups go to one remote repository; set one")
        }
        return found.first
    }

    /// SUPERVISOR_BACKUP_S3_URL (ENDPOINT/BUCKET[/PREFIX]), or AWS_S3_BUCKET
    /// in AWS_REGION (us-east-1 by default), with the AWS credentials.
    static func s3Repository(_ settings: Settings, warnings: inout [String]) throws(SettingError) -> RemoteRepository? {
        let region = settings.value("SUPERVISOR_BACKUP_S3_REGION") ?? settings.value("AWS_REGION") ?? "us-east-1"
        let url: String
        let source: String
        switch (settings.value("SUPERVISOR_BACKUP_S3_URL"), settings.value("AWS_S3_BUCKET")) {
        case (nil, nil): return nil
        case (.some, .some): throw SettingError("SUPERVISOR_BACKUP_S3_URL and AWS_S3_BUCKET are both set: set one of them")
        case (let given?, nil):
            let trimmed = given.hasSuffix("/") ? String(given.dropLast()) : given
            guard trimmed.hasPrefix("http://") || trimmed.hasPrefix("https://"), trimmed.split(separator: "/").count >= 3,
                  !trimmed.contains(where: { $0 == "?" || $0 == "@" || $0 == " " || $0 == "\n" }) else {
                // Shown redacted: a user:password@ or a query is a credential.
                throw SettingError("SUPERVISOR_BACKUP_S3_URL='\(redactedURL(given))': expected ENDPOINT/BUCKET[/PREFIX], like "
                                   + "https://s3.eu-west-1.amazonaws.com/my-bucket/workspaces (credentials go in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")
            }
            (url, source) = (trimmed, "SUPERVISOR_BACKUP_S3_URL")
        case (nil, let bucket?):
            guard (3...63).contains(bucket.count), bucket.allSatisfy({ ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "." }) else {
                throw SettingError("AWS_S3_BUCKET='\(bucket)': expected an S3 bucket name (3 to 63 of a-z, 0-9, '-' and '.')")
            }
            (url, source) = ("https://s3.\(region).amazonaws.com/\(bucket)", "AWS_S3_BUCKET")
        }
        guard let id = settings.value("AWS_ACCESS_KEY_ID"), !id.isEmpty else {
            throw SettingError("AWS_ACCESS_KEY_ID is not set: \(source) needs credentials")
        }
        guard let key = try secret(settings, .awsSecretAccessKey, warnings: &warnings) else {
            throw SettingError("AWS_SECRET_ACCESS_KEY is not set: \(source) needs credentials")
        }
        guard !region.isEmpty, region.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" }) else {
            throw SettingError("SUPERVISOR_BACKUP_S3_REGION='\(region)': expected a region name like eu-west-1")
        }
        return RemoteRepository(kind: .s3, location: "s3:" + url, source: source,
                                credentials: ["AWS_ACCESS_KEY_ID=" + id, "AWS_SECRET_ACCESS_KEY=" + key.text, "AWS_DEFAULT_REGION=" + region])
    }

    /// A container SAS URL (SUPERVISOR_BACKUP_AZURE_SAS_URL), or the
    /// original images' AZURE_BLOB_ACCOUNT_NAME, AZURE_BLOB_ACCOUNT_KEY and
    /// AZURE_BLOB_CONTAINER (all three). restic reaches the account at
    /// ACCOUNT.blob.core.windows.net and nowhere else.
    static func azureRepository(_ settings: Settings, warnings: inout [String]) throws(SettingError) -> RemoteRepository? {
        if let endpoint = settings.value("SUPERVISOR_BACKUP_AZURE_ENDPOINT") {
            throw SettingError("SUPERVISOR_BACKUP_AZURE_ENDPOINT='\(endpoint)': the backup engine (restic) reaches Azure at ACCOUNT.blob.core.windows.net only; unset it")
        }
        let names = ["AZURE_BLOB_ACCOUNT_NAME", "AZURE_BLOB_ACCOUNT_KEY", "AZURE_BLOB_CONTAINER"]
        let given = names.filter(settings.isSet)
        let sas = try secret(settings, .azureSASURL, warnings: &warnings)
        if let sas {
            guard given.isEmpty else { throw SettingError("SUPERVISOR_BACKUP_AZURE_SAS_URL and AZURE_BLOB_ACCOUNT_NAME are both set: set one way to reach Azure") }
            let text = sas.text
            let problem = SettingError("SUPERVISOR_BACKUP_AZURE_SAS_URL: expected a container SAS URL, https://ACCOUNT.blob.core.windows.net/CONTAINER?sv=...")
            guard text.hasPrefix("https://"), let question = text.firstIndex(of: "?"), !text.contains(where: { $0 == " " || $0 == "\n" }) else { throw problem }
            let parts = text[text.index(text.startIndex, offsetBy: 8)..<question].split(separator: "/")
            guard parts.count == 1 || parts.count == 2, let host = parts.first, host.hasSuffix(".blob.core.windows.net"),
                  let account = host.split(separator: ".").first, isAccountName(account), parts.count == 2, isContainerName(parts[1]) else { throw problem }
            return RemoteRepository(kind: .azure, location: "azure:\(parts[1]):/", source: "SUPERVISOR_BACKUP_AZURE_SAS_URL",
                                    credentials: ["AZURE_ACCOUNT_NAME=\(account)", "AZURE_ACCOUNT_SAS=" + String(text[text.index(after: question)...])])
        }
        guard !given.isEmpty else { return nil }
        guard given.count == names.count else {
            throw SettingError("\(names.filter { !given.contains($0) }.joined(separator: ", ")) not set: Azure needs all of \(names.joined(separator: ", "))")
        }
        let account = settings.value("AZURE_BLOB_ACCOUNT_NAME") ?? ""
        guard isAccountName(Substring(account)) else {
            throw SettingError("AZURE_BLOB_ACCOUNT_NAME='\(account)': expected a storage account name (3 to 24 of a-z and 0-9)")
        }
        let container = settings.value("AZURE_BLOB_CONTAINER") ?? ""
        guard isContainerName(Substring(container)) else {
            throw SettingError("AZURE_BLOB_CONTAINER='\(container)': expected a container name (3 to 63 of a-z, 0-9 and '-')")
        }
        guard let key = try secret(settings, .azureAccountKey, warnings: &warnings), isBase64(key.bytes) else {
            throw SettingError("AZURE_BLOB_ACCOUNT_KEY: expected the account key as Azure shows it (base64)")
        }
        return RemoteRepository(kind: .azure, location: "azure:\(container):/", source: "AZURE_BLOB_ACCOUNT_NAME",
                                credentials: ["AZURE_ACCOUNT_NAME=" + account, "AZURE_ACCOUNT_KEY=" + key.text])
    }

    static func isAccountName(_ name: Substring) -> Bool {
        (3...24).contains(name.count) && name.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) }
    }

    static func isContainerName(_ name: Substring) -> Bool {
        (3...63).contains(name.count) && name.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" }
    }

    /// Padded base64 of at least one byte.
    static func isBase64(_ bytes: [UInt8]) -> Bool {
        let digits = bytes.prefix { $0 != UInt8(ascii: "=") }
        return !bytes.isEmpty && bytes.count % 4 == 0 && bytes.count - digits.count <= 2
            && bytes[digits.count...].allSatisfy { $0 == UInt8(ascii: "=") }
            && digits.allSatisfy { isalnum(Int32($0)) != 0 || $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "/") }
    }

    static func duration(_ settings: Settings, _ name: String, default fallback: Duration) throws(SettingError) -> Duration {
        guard let text = settings.value(name) else { return fallback }
        return try parse(text, name)
    }

    /// Positive, up to a year (a backup's maximum age may be counted in days).
    static func parse(_ text: String, _ name: String) throws(SettingError) -> Duration {
        try Settings.duration(text, variable: name, in: .milliseconds(1)...(.seconds(366 * 86_400)))
    }
}
