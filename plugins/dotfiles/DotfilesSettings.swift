import BerthCore

/// A user's dotfiles repository, cloned into their home and installed the
/// way the devcontainers CLI and Codespaces do it: the repository's install
/// script when it has one, else its top-level dotfiles linked into the home.
public struct DotfilesSettings: Equatable, Sendable {
    /// What git clones (DOTFILES_REPO): an https://, ssh:// or file:// URL
    /// or USER@HOST:PATH, never with credentials in it.
    public let repositoryURL: String
    /// DOTFILES_REF: the branch, tag or commit to check out; nil for the
    /// repository's default branch.
    public let ref: String?
    /// DOTFILES_INSTALL_COMMAND: run instead of looking for an install script.
    public let installCommand: String?
    /// DOTFILES_TARGET as a path inside the home, relative to it (never
    /// the home itself), for writes through the home's DirectoryHandle.
    public let targetInHome: String
    /// The same, absolute, for messages.
    public let target: String

    public static let defaultTarget = "~/.dotfiles"
    static let options = ["DOTFILES_REF", "DOTFILES_INSTALL_COMMAND", "DOTFILES_TARGET"]

    /// The dotfiles of `settings` for the user whose home is `home`; nil
    /// when DOTFILES_REPO is not set. Its options without it are an error:
    /// they say dotfiles were wanted.
    public static func read(_ settings: Settings, home: String) throws(SettingError) -> DotfilesSettings? {
        guard let repository = settings.value("DOTFILES_REPO") else {
            if let option = options.first(where: { settings.value($0) != nil }) {
                throw SettingError("\(option) is set but DOTFILES_REPO is not: set DOTFILES_REPO to OWNER/NAME or a URL")
            }
            return nil
        }
        let url = try repositoryURL(repository, gitHubHost: gitHubHost(settings))
        var ref: String?
        if let given = settings.value("DOTFILES_REF") { ref = try checkedRef(given) }
        let targetInHome = try targetInHome(settings.value("DOTFILES_TARGET", default: defaultTarget), home: home)
        return DotfilesSettings(
            repositoryURL: url,
            ref: ref,
            installCommand: settings.value("DOTFILES_INSTALL_COMMAND"),
            targetInHome: targetInHome,
            target: (home.hasSuffix("/") ? home : home + "/") + targetInHome)
    }

    /// The host OWNER/NAME is on: the one github-auth gives the credential
    /// helper for (GH_HOST, else GITHUB_API_URL's host, else github.com),
    /// so a GitHub Enterprise user's dotfiles clone with their token.
    static func gitHubHost(_ settings: Settings) -> String {
        (try? GitHubAPI.fromSettings(settings))?.host(settings: settings) ?? "github.com"
    }

    /// DOTFILES_REPO as the URL git clones: OWNER/NAME is a repository on
    /// `gitHubHost`; a URL is https://, ssh:// or file://, or ssh's
    /// [USER@]HOST:PATH. Credentials never go in the URL (git keeps it in
    /// .git/config and shows it in errors and `ps`): userinfo with a
    /// password, any userinfo over https, and query strings are refused,
    /// and the value is shown only redacted.
    public static func repositoryURL(_ value: String, gitHubHost: String = "github.com") throws(SettingError) -> String {
        func refused(_ why: String) -> SettingError {
            SettingError("DOTFILES_REPO='\(redactedURL(value))': \(why)")
        }
        let expected = "expected OWNER/NAME (a GitHub repository), an https://, ssh:// or file:// URL, or USER@HOST:PATH"
        let noCredentials = "credentials never go in the URL: give a GitHub token through GH_TOKEN (github-auth's credential helper) or use an SSH key"
        if value.hasPrefix("-") { throw refused("begins with '-', which git would read as an option") }
        if value.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) || value.contains(where: \.isWhitespace) {
            throw refused("has a space or a control character")
        }

        if let separator = value.firstRange(of: "://") {
            let scheme = value[..<separator.lowerBound].lowercased()
            guard scheme == "https" || scheme == "ssh" || scheme == "file" else { throw refused(expected) }
            let rest = value[separator.upperBound...]
            if rest.contains("?") || rest.contains("#") { throw refused("a URL with a query is refused; " + noCredentials) }
            let authority = rest.prefix { $0 != "/" }
            let path = rest.dropFirst(authority.count)
            var host = authority
            if let at = authority.lastIndex(of: "@") {
                // ssh://git@host/... names the account to log in as, not a
                // secret; anything else before '@' is a password or token.
                let userinfo = authority[..<at]
                guard scheme == "ssh", !userinfo.isEmpty, !userinfo.contains(":"), !userinfo.hasPrefix("-") else {
                    throw refused("a URL with user information is refused; " + noCredentials)
                }
                host = authority[authority.index(after: at)...]
            }
            if scheme == "file" {
                guard authority.isEmpty, path.count > 1 else { throw refused("expected file:///PATH") }
            } else {
                // A host beginning with '-' reaches ssh as an option (CVE-2017-1000117).
                guard !host.isEmpty, !host.hasPrefix("-"), path.count > 1 else { throw refused("expected \(scheme)://HOST/PATH") }
            }
            return value
        }

        // ssh's scp-like form: no '/' before the first ':'.
        if let colon = value.firstIndex(of: ":"), !value[..<colon].contains("/") {
            let userAndHost = value[..<colon]
            let path = value[value.index(after: colon)...]
            let host = userAndHost.lastIndex(of: "@").map { userAndHost[userAndHost.index(after: $0)...] } ?? userAndHost
            let user = userAndHost.dropLast(host.count).dropLast()
            guard !host.isEmpty, !host.hasPrefix("-"), !user.hasPrefix("-"), !path.isEmpty, user.isEmpty == !userAndHost.contains("@") else {
                throw refused("expected USER@HOST:PATH")
            }
            return value
        }

        let parts = value.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2 else { throw refused(expected) }
        let owner = parts[0]
        let name = parts[1].hasSuffix(".git") ? parts[1].dropLast(4) : parts[1]
        guard isGitHubName(owner), isGitHubName(name) else {
            throw refused("OWNER and NAME are letters, digits, '-', '_' and '.'; " + expected)
        }
        // GH_HOST is the user's own text: a host name and maybe a port, or
        // the URL would point elsewhere than they meant.
        guard !gitHubHost.isEmpty, !gitHubHost.hasPrefix("-"),
              gitHubHost.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == ":") }) else {
            throw SettingError("GH_HOST='\(gitHubHost)': expected a host name (and :PORT), which DOTFILES_REPO=OWNER/NAME is cloned from")
        }
        return "https://\(gitHubHost)/\(owner)/\(name).git"
    }

    /// What GitHub allows in an account's or a repository's name.
    static func isGitHubName(_ name: Substring) -> Bool {
        !name.isEmpty && name != "." && name != ".." && !name.hasPrefix("-")
            && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }
    }

    /// DOTFILES_REF when git can only read it as a ref: not an option
    /// (leading '-'), no space, control character or '..', and git's other
    /// rules for ref names (check-ref-format): no `~^:?*[\`, no `@{`, not
    /// `@`, no empty part, nothing ending in `.lock`, '/' or '.'.
    public static func checkedRef(_ value: String) throws(SettingError) -> String {
        func refused(_ why: String) -> SettingError { SettingError("DOTFILES_REF='\(value)': \(why)") }
        if value.hasPrefix("-") { throw refused("begins with '-', which git would read as an option") }
        if value.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) { throw refused("has a control character") }
        if value.contains(where: \.isWhitespace) { throw refused("has a space") }
        if value.contains("..") { throw refused("has '..'") }
        if let bad = value.first(where: { "~^:?*[\\".contains($0) }) { throw refused("has '\(bad)', which git does not allow in a ref") }
        if value == "@" || value.contains("@{") { throw refused("is '@' or has '@{', which git reads as a reflog expression") }
        if value.hasPrefix("/") || value.hasSuffix("/") || value.contains("//") || value.hasSuffix(".") || value.hasSuffix(".lock") {
            throw refused("is not a ref name git accepts (an empty part, or ending in '.', '/' or '.lock')")
        }
        if value.split(separator: "/").contains(where: { $0.hasPrefix(".") }) { throw refused("has a part beginning with '.'") }
        return value
    }

    /// DOTFILES_TARGET as a path relative to `home`: `~` and `~/PATH` are
    /// the home, a relative path is inside it, an absolute path must be in
    /// it. A '..' anywhere is refused rather than resolved: the clone must
    /// land in the home and nowhere else, and the words of the path, not
    /// the directories they name today, are what can be checked here.
    public static func targetInHome(_ value: String, home: String) throws(SettingError) -> String {
        func refused(_ why: String) -> SettingError { SettingError("DOTFILES_TARGET='\(value)': \(why)") }
        if value.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) { throw refused("has a control character") }
        var relative: Substring
        if value == "~" {
            relative = ""
        } else if value.hasPrefix("~/") {
            relative = value.dropFirst(2)
        } else if value.hasPrefix("~") {
            throw refused("only ~ (the workspace user's home) and ~/PATH are understood")
        } else if value.hasPrefix("/") {
            let homeParts = home.split(separator: "/")
            let parts = value.split(separator: "/").filter { $0 != "." }
            if parts.contains("..") { throw refused("'..' is refused: the target must be inside the home (\(home))") }
            guard parts.starts(with: homeParts) else { throw refused("outside the home (\(home))") }
            relative = Substring(parts.dropFirst(homeParts.count).joined(separator: "/"))
        } else {
            relative = Substring(value)
        }
        let parts = relative.split(separator: "/").filter { $0 != "." }
        if parts.contains("..") { throw refused("'..' is refused: the target must be inside the home (\(home))") }
        guard !parts.isEmpty else { throw refused("is the home itself: name a directory inside it, like \(defaultTarget)") }
        return parts.joined(separator: "/")
    }
}

/// What runs once the dotfiles repository is cloned, when
/// DOTFILES_INSTALL_COMMAND does not say.
public enum DotfilesInstall {
    /// The devcontainers CLI's order (Codespaces' too): the first of these
    /// that the repository has is its install script.
    public static let scriptCandidates = [
        "install.sh", "install", "bootstrap.sh", "bootstrap", "script/bootstrap", "setup.sh", "setup", "script/setup",
    ]
    /// Top-level names that belong to the repository, not to the home.
    static let notLinked: Set<String> = [".", "..", ".git", ".github", ".gitignore", ".gitmodules", ".DS_Store"]

    /// The install script among `present`: the paths, relative to the
    /// clone, of its files (its top level and script/ are enough).
    public static func script(present: Set<String>) -> String? {
        scriptCandidates.first(where: present.contains)
    }

    /// Without a script, which top-level entries of the clone are linked
    /// into the home: the dotfiles, but not git's own. Sorted, so logs
    /// read the same whatever order the directory lists them in.
    public static func linkedEntries(topLevelNames: [String]) -> [String] {
        topLevelNames.filter { $0.hasPrefix(".") && !notLinked.contains($0) }
            .sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }
}
