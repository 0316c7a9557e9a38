import BerthCore
import BerthProvisioning
import Glibc

/// ai-cli: the AI CLIs' keys for every shell and terminal of the workspace
/// user, from one 0600 env file that a profile snippet loads (never the
/// keys themselves in ~/.bashrc), plus each CLI's own config where it reads
/// it, and code-server's settings.json with Copilot on and telemetry and
/// updates off, merged so the user's own settings win.
public final class AICLIStep: ProvisioningStep {
    public let name = "ai-cli"
    public let dependencies: [String] = []
    static let keyVariables = AICLIPlugin.keyVariables
    /// Its plugin's variables that ask for it: the keys, and a GitHub token
    /// alone (Copilot in code-server, and the Copilot CLI through gh's
    /// login, use it).
    let requesting: [String]

    static let shellBlock = MarkedBlock(begin: "# BEGIN berth: AI CLI keys from a 0600 file (replaced at every start)", placement: .top)

    /// Merged into code-server's user settings when absent.
    static let editorSettings: [(key: String, value: JSON)] = [
        ("github.copilot.enable", .object([("*", .bool(true))])),
        ("telemetry.telemetryLevel", .string("off")),
        ("update.mode", .string("none")),
        ("extensions.autoUpdate", .bool(false)),
        ("extensions.autoCheckUpdates", .bool(false)),
    ]

    init(requesting: [String]) {
        self.requesting = requesting
    }

    public func skipReason(given inputs: StepInputs) -> String? {
        guard requesting.contains(where: inputs.settings.isSet) else {
            return "no AI key (ANTHROPIC_API_KEY, OPENAI_API_KEY, GEMINI_API_KEY, GOOGLE_API_KEY) or GitHub token is set"
        }
        return inputs.cannotWriteHome()
    }

    struct StepFailure: Error {
        let message: String
    }

    public func run(in context: StepContext, done: @escaping (StepOutcome) -> Void) {
        do throws(StepFailure) {
            done(.ok(try provision(context)))
        } catch {
            done(.failed(error.message))
        }
    }

    private func provision(_ context: StepContext) throws(StepFailure) -> String {
        let user: UserAccount
        switch context.user {
        case .success(let found): user = found
        case .failure(let error): throw StepFailure(message: error.message)
        }
        var keys: [(name: String, value: Secret)] = []
        do throws(SettingError) {
            for name in Self.keyVariables {
                guard let key = try context.settings.secret(name) else { continue }
                try checkConfigValue(key.bytes, from: name)
                try Self.check(key, name: name)
                keys.append((name, key))
            }
        } catch {
            throw StepFailure(message: error.message)
        }
        var done: [String] = []
        do {
            let files = try UserFiles(user: user)
            // Settings first: a user file that does not parse fails the step
            // before anything else changes.
            if try files.mergeJSON(Self.editorSettings, into: ".local/share/code-server/User/settings.json", mode: 0o644) {
                done.append("code-server settings merged")
            }
            // No key any more: the file and the lines loading it go.
            if keys.isEmpty {
                try files.removeEnvFile()
            } else {
                try files.write(Self.envFile(keys), to: UserFiles.envDirectory + "/" + UserFiles.envName, mode: 0o600)
            }
            let loader = keys.isEmpty ? [] : [". \"$HOME/.config/berth/ai-cli.env\" 2>/dev/null || true"]
            for profile in [".profile", ".bashrc"] {
                let existing = files.home.readText(profile, owners: user.trustedOwners)
                if existing == nil && keys.isEmpty { continue }
                try files.write(Self.shellBlock.apply(loader, to: existing), to: profile, mode: 0o644)
            }
            if !keys.isEmpty { done.append("\(keys.map(\.name).joined(separator: ", ")) for login shells and terminals") }
            done += try writeCLIConfigs(keys, files: files)
        } catch let error as UserFiles.MergeError {
            throw StepFailure(message: error.message)
        } catch let error as SettingError {
            throw StepFailure(message: error.message)
        } catch {
            throw StepFailure(message: "\(error)")
        }
        return done.joined(separator: "; ")
    }

    /// Each CLI where it looks without any variable set: Codex's auth.json,
    /// Gemini CLI's ~/.gemini/.env and its auth choice, and Claude Code's
    /// apiKeyHelper, which reads the key from the env file when asked.
    private func writeCLIConfigs(_ keys: [(name: String, value: Secret)], files: UserFiles) throws -> [String] {
        var done: [String] = []
        if let openAI = keys.first(where: { $0.name == "OPENAI_API_KEY" }) {
            try files.setJSON("OPENAI_API_KEY", to: .string(openAI.value.text), in: ".codex/auth.json", directoryMode: 0o700)
            done.append("Codex auth.json")
        }
        let gemini = keys.filter { $0.name == "GEMINI_API_KEY" || $0.name == "GOOGLE_API_KEY" }
        if !gemini.isEmpty {
            let text = gemini.map { "\($0.name)=\($0.value.text)" }.joined(separator: "\n") + "\n"
            try files.write(text, to: ".gemini/.env", mode: 0o600, directoryMode: 0o700)
            _ = try files.mergeJSON([("security", .object([("auth", .object([("selectedType", .string("gemini-api-key"))]))]))],
                                    into: ".gemini/settings.json", mode: 0o600, directoryMode: 0o700)
            done.append("Gemini CLI .env")
        }
        if keys.contains(where: { $0.name == "ANTHROPIC_API_KEY" }) {
            let home = try configValue(files.user.home, from: "the home of BERTH_USER in /etc/passwd")
            let helper = ". \(home)/.config/berth/ai-cli.env && printf %s \"$ANTHROPIC_API_KEY\""
            _ = try files.mergeJSON([("apiKeyHelper", .string(helper))], into: ".claude/settings.json", mode: 0o600, directoryMode: 0o700)
            done.append("Claude Code apiKeyHelper")
        }
        return done
    }

    /// API keys are one word of letters, digits, '_', '-' and '.': a quote
    /// or a newline could break out of the shell file that exports them.
    static func check(_ key: Secret, name: String) throws(SettingError) {
        let allowed = key.bytes.allSatisfy {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".")
        }
        guard allowed, key.bytes.count <= 4096 else {
            throw SettingError("\(name): not an API key (only letters, digits, '_', '-' and '.' may appear in one)")
        }
    }

    static func envFile(_ keys: [(name: String, value: Secret)]) -> String {
        "# Written by berth at every start (0600, readable by you only).\n"
            + keys.map { "export \($0.name)='\($0.value.text)'" }.joined(separator: "\n") + "\n"
    }
}
