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
        public var s3: S3Target?
        /// A container SAS URL: https://ACCOUNT.blob.core.windows.net/CONTAINER?SAS
        public var azureSASURL: Secret?
        public var azureSharedKey: AzureSharedKey?
    }

    /// The original images' Azure settings: the account's name and key,
    /// requests signed with Shared Key (the key itself never travels).
    public struct AzureSharedKey: Sendable {
        public var account: String
        public var key: Secret
        public var container: String
        /// https://ACCOUNT.blob.core.windows.net, or an emulator's.
        public var endpoint: String
    }

    /// Path-style S3 (AWS or compatible): URL is ENDPOINT/BUCKET[/PREFIX].
    public struct S3Target: Sendable {
        public var url: String
        public var region: String
        public var accessKeyID: String
        public var secretAccessKey: Secret
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
            if let (url, source) = try s3URL(settings) {
                let trimmed = url.hasSuffix("/") ? String(url.dropLast()) : url
                guard trimmed.hasPrefix("http://") || trimmed.hasPrefix("https://"), trimmed.split(separator: "/").count >= 3, !trimmed.contains("?") else {
                    throw SettingError("SUPERVISOR_BACKUP_S3_URL='\(url)': expected ENDPOINT/BUCKET[/PREFIX], like https://s3.eu-west-1.amazonaws.com/my-bucket/workspaces")
                }
                guard let id = settings.value("AWS_ACCESS_KEY_ID"), !id.isEmpty else {
                    throw SettingError("AWS_ACCESS_KEY_ID is not set: \(source) needs credentials")
                }
                guard let awsSecret = try secret(settings, .awsSecretAccessKey, warnings: &warnings) else {
                    throw SettingError("AWS_SECRET_ACCESS_KEY is not set: \(source) needs credentials")
                }
                let region = settings.value("SUPERVISOR_BACKUP_S3_REGION") ?? settings.value("AWS_REGION") ?? "us-east-1"
                guard !region.isEmpty, region.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" }) else {
                    throw SettingError("SUPERVISOR_BACKUP_S3_REGION='\(region)': expected a region name like eu-west-1")
                }
                loaded.backup?.s3 = S3Target(url: trimmed, region: region, accessKeyID: id, secretAccessKey: awsSecret)
            }
            if let sas = try secret(settings, .azureSASURL, warnings: &warnings) {
                let text = String(decoding: sas.bytes, as: UTF8.self)
                guard text.hasPrefix("https://") || text.hasPrefix("http://"), text.contains("?"), !text.contains(where: { $0 == " " || $0 == "\n" }) else {
                    throw SettingError("SUPERVISOR_BACKUP_AZURE_SAS_URL: expected a container SAS URL, https://ACCOUNT.blob.core.windows.net/CONTAINER?sv=...")
                }
                loaded.backup?.azureSASURL = sas
            }
            loaded.backup?.azureSharedKey = try azureSharedKey(settings, warnings: &warnings)
            if loaded.backup?.azureSASURL != nil && loaded.backup?.azureSharedKey != nil {
                throw SettingError("SUPERVISOR_BACKUP_AZURE_SAS_URL and AZURE_BLOB_ACCOUNT_NAME are both set: set one way to reach Azure")
            }
        }
        loaded.warnings = warnings
        return loaded
    }

    /// SUPERVISOR_BACKUP_S3_URL, or the original images' AWS_S3_BUCKET (in
    /// AWS_REGION, or us-east-1) as its path-style URL, with the variable
    /// it came from; nil when neither is set.
    static func s3URL(_ settings: Settings) throws(SettingError) -> (url: String, source: String)? {
        let url = settings.value("SUPERVISOR_BACKUP_S3_URL")
        guard let bucket = settings.value("AWS_S3_BUCKET") else { return url.map { ($0, "SUPERVISOR_BACKUP_S3_URL") } }
        guard url == nil else { throw SettingError("SUPERVISOR_BACKUP_S3_URL and AWS_S3_BUCKET are both set: set one of them") }
        guard (3...63).contains(bucket.count), bucket.allSatisfy({ ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "." }) else {
            throw SettingError("AWS_S3_BUCKET='\(bucket)': expected an S3 bucket name (3 to 63 of a-z, 0-9, '-' and '.')")
        }
        let region = settings.value("SUPERVISOR_BACKUP_S3_REGION") ?? settings.value("AWS_REGION") ?? "us-east-1"
        return ("https://s3.\(region).amazonaws.com/\(bucket)", "AWS_S3_BUCKET")
    }

    /// AZURE_BLOB_ACCOUNT_NAME, AZURE_BLOB_ACCOUNT_KEY and AZURE_BLOB_CONTAINER
    /// together (the original images' names), or none of them.
    static func azureSharedKey(_ settings: Settings, warnings: inout [String]) throws(SettingError) -> AzureSharedKey? {
        let names = ["AZURE_BLOB_ACCOUNT_NAME", "AZURE_BLOB_ACCOUNT_KEY", "AZURE_BLOB_CONTAINER"]
        let given = names.filter(settings.isSet)
        guard !given.isEmpty else { return nil }
        guard given.count == names.count else {
            throw SettingError("\(names.filter { !given.contains($0) }.joined(separator: ", ")) not set: Azure Shared Key needs all of \(names.joined(separator: ", "))")
        }
        let account = settings.value("AZURE_BLOB_ACCOUNT_NAME") ?? ""
        guard (3...24).contains(account.count), account.allSatisfy({ ("a"..."z").contains($0) || ("0"..."9").contains($0) }) else {
            throw SettingError("AZURE_BLOB_ACCOUNT_NAME='\(account)': expected a storage account name (3 to 24 of a-z and 0-9)")
        }
        let container = settings.value("AZURE_BLOB_CONTAINER") ?? ""
        guard (3...63).contains(container.count), container.allSatisfy({ ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" }) else {
            throw SettingError("AZURE_BLOB_CONTAINER='\(container)': expected a container name (3 to 63 of a-z, 0-9 and '-')")
        }
        guard let encoded = try secret(settings, .azureAccountKey, warnings: &warnings), let key = Base64.decode(encoded.bytes), !key.isEmpty else {
            throw SettingError("AZURE_BLOB_ACCOUNT_KEY: expected the account key as Azure shows it (base64)")
        }
        var endpoint = settings.value("SUPERVISOR_BACKUP_AZURE_ENDPOINT") ?? "https://\(account).blob.core.windows.net"
        while endpoint.hasSuffix("/") { endpoint.removeLast() }
        guard endpoint.hasPrefix("https://") || endpoint.hasPrefix("http://"), !endpoint.contains(where: { $0 == "?" || $0 == " " }) else {
            throw SettingError("SUPERVISOR_BACKUP_AZURE_ENDPOINT='\(endpoint)': expected an http(s) URL, like https://ACCOUNT.blob.core.windows.net")
        }
        return AzureSharedKey(account: account, key: Secret(key), container: container, endpoint: endpoint)
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
