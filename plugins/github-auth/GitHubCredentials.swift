import BerthCore
import BerthProvisioning
import Glibc

/// Where gh and git find the token in sessions that lack the container's
/// environment (SSH logins, code-server terminals): gh's hosts.yml, and a
/// credential helper plus user.name/email in ~/.gitconfig. Without gh, git's
/// own `store` helper reads a 0600 file instead.
public struct GitHubCredentials {
    public let user: UserAccount
    public let host: String
    /// gh's path in the container, or nil when only git is installed.
    public let gh: String?
    /// GIT_USER_NAME / GIT_USER_EMAIL, which win over the API's answer.
    public let gitName: String?
    public let gitEmail: String?

    static let gitBlock = MarkedBlock(begin: "# BEGIN berth: GitHub credentials and identity (replaced at every start)")

    var owner: AtomicFile.Owner { AtomicFile.Owner(uid: user.uid, gid: user.gid) }
    var configDirectory: String { user.home + "/.config" }
    public var hostsFile: String { configDirectory + "/gh/hosts.yml" }
    public var storeFile: String { configDirectory + "/berth/git-credentials" }
    public var gitConfig: String { user.home + "/.gitconfig" }
    /// Where the API's answer came from, for messages about its values.
    static let profileSource = "GITHUB_API_URL/user"

    /// Writes every file (each atomically, owned by the user, through
    /// handles opened from the home without following symlinks); returns
    /// what it configured, for the step's detail. Every value is checked
    /// before the first file changes, so a refused one leaves them all.
    public func install(_ token: GitHubToken, for identity: GitHubIdentity) throws(SettingError) -> String {
        do {
            let home = try user.openHome()
            let existingGitConfig = home.readText(".gitconfig", owners: user.trustedOwners)
            let (gitConfigText, identitySource) = try gitConfigText(identity: identity, existing: existingGitConfig)
            let config = try home.directory(".config", mode: 0o755, owner: owner)
            var done: [String] = []
            if gh != nil {
                let ghDirectory = try config.directory("gh", mode: 0o700, owner: owner)
                let existing = ghDirectory.readText("hosts.yml", owners: user.trustedOwners)
                try ghDirectory.write(Array(hostsYAML(token, login: identity.login, existing: existing).utf8), to: "hosts.yml", mode: 0o600, owner: owner)
                done.append("gh hosts.yml")
            } else {
                let line = try configValue("https://\(identity.login):\(token.secret.text)@\(host)", from: "\(token.source), the GitHub login and GH_HOST") + "\n"
                let berthDirectory = try config.directory("berth", mode: 0o700, owner: owner)
                try berthDirectory.write(Array(line.utf8), to: "git-credentials", mode: 0o600, owner: owner)
                done.append("git credential store")
            }
            try home.write(Array(gitConfigText.utf8), to: ".gitconfig", mode: 0o644, owner: owner)
            done.append("git credential helper (\(gh == nil ? "store" : "gh"))")
            if let identitySource { done.append("git identity from \(identitySource)") }
            return "\(identity.login) on \(host): " + done.joined(separator: ", ")
        } catch let error as SettingError {
            throw error
        } catch {
            throw SettingError("\(error)")
        }
    }

    /// gh's own layout (2.40+ reads `users`, older versions the host-level
    /// keys); other hosts' entries in the file are kept as they are.
    func hostsYAML(_ token: GitHubToken, login: String, existing: String?) throws(SettingError) -> String {
        let host = try configValue(host, from: "GH_HOST")
        let login = try configValue(login, from: "the GitHub login from \(Self.profileSource)")
        try checkConfigValue(token.secret.bytes, from: token.source)
        var kept: [Substring] = []
        var inOurHost = false
        for line in (existing ?? "").split(separator: "\n", omittingEmptySubsequences: false) {
            if let first = line.first, first != " ", first != "\t", first != "#" {
                inOurHost = line == "\(host):"
            }
            if !inOurHost { kept.append(line) }
        }
        while let last = kept.last, last.isEmpty { kept.removeLast() }
        let ours = [
            "\(host):",
            "    users:",
            "        \(login):",
            "            oauth_token: \(token.secret.text)",
            "    git_protocol: https",
            "    oauth_token: \(token.secret.text)",
            "    user: \(login)",
        ]
        return (kept.map(String.init) + ours).joined(separator: "\n") + "\n"
    }

    /// The credential helper for the host (and gist. on github.com), and
    /// user.name/email: from GIT_USER_* always; from the API only when the
    /// user's own part of the file sets none, so their choice stands.
    func gitConfigText(identity: GitHubIdentity, existing: String?) throws(SettingError) -> (text: String, identitySource: String?) {
        let helper: String
        if let gh {
            helper = "!\(shellQuotedIfNeeded(try configValue(gh, from: "gh's path from PATH"))) auth git-credential"
        } else {
            helper = "store --file=\(shellQuotedIfNeeded(try configValue(storeFile, from: "the home of BERTH_USER in /etc/passwd")))"
        }
        let host = try configValue(host, from: "GH_HOST")
        var lines: [String] = []
        let hosts = host == "github.com" ? ["github.com", "gist.github.com"] : [host]
        for name in hosts {
            // The empty helper first clears helpers configured elsewhere
            // (a system-wide cache) for this host, as `gh auth setup-git` does.
            lines += ["[credential \"https://\(name)\"]", "\thelper =", "\thelper = \(gitQuoted(helper))"]
        }
        let userSets = userSetsIdentity(Self.gitBlock.userLines(of: existing))
        var name: String?
        var email: String?
        if let gitName {
            name = try configValue(gitName, from: "GIT_USER_NAME")
        } else if !userSets.name {
            name = try configValue(identity.name ?? identity.login, from: "the GitHub profile name from \(Self.profileSource)")
        }
        if let gitEmail {
            email = try configValue(gitEmail, from: "GIT_USER_EMAIL")
        } else if !userSets.email {
            email = try configValue(identity.commitEmail, from: "the GitHub profile email from \(Self.profileSource)")
        }
        var source: String?
        if name != nil || email != nil {
            lines.append("[user]")
            if let name { lines.append("\tname = \(gitQuoted(name))") }
            if let email { lines.append("\temail = \(gitQuoted(email))") }
            source = gitName != nil || gitEmail != nil ? "GIT_USER_NAME/GIT_USER_EMAIL" : "the GitHub profile"
        }
        return (Self.gitBlock.apply(lines, to: existing), source)
    }

    private func userSetsIdentity(_ lines: [Substring]) -> (name: Bool, email: Bool) {
        var section = ""
        var found = (name: false, email: false)
        for line in lines {
            let trimmed = line.trimmingWhitespace()
            if trimmed.hasPrefix("[") {
                section = String(trimmed.dropFirst().prefix { $0 != "]" && $0 != " " && $0 != "\"" }).lowercased()
                continue
            }
            guard section == "user" else { continue }
            let key = trimmed.prefix { $0 != "=" && $0 != " " && $0 != "\t" }.lowercased()
            if key == "name" { found.name = true }
            if key == "email" { found.email = true }
        }
        return found
    }
}

/// A git config value in double quotes, with `"` and `\` escaped.
func gitQuoted(_ value: String) -> String {
    "\"" + value.replacingAll("\\", with: "\\\\").replacingAll("\"", with: "\\\"") + "\""
}

func shellQuotedIfNeeded(_ path: String) -> String {
    path.allSatisfy({ $0.isLetter || $0.isNumber || "/._-+".contains($0) }) ? path : "'" + path.replacingAll("'", with: "'\\''") + "'"
}

extension String {
    func replacingAll(_ target: String, with replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
