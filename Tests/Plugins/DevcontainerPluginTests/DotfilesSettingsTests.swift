@testable import BerthPlugins
import BerthCore
import XCTest

/// DOTFILES_*: the repository URL (no credentials in it, nothing git could
/// read as an option), the ref, the target inside the home, and what is
/// installed from the clone.
final class DotfilesSettingsTests: XCTestCase {
    static let home = "/home/dev8"

    func read(_ environment: [String: String]) throws -> DotfilesSettings? {
        try DotfilesSettings.read(Settings(environment: environment), home: Self.home)
    }

    func refusal(_ value: String, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            let url = try DotfilesSettings.repositoryURL(value)
            XCTFail("accepted as \(url)", file: file, line: line)
            return ""
        } catch {
            return error.message
        }
    }

    // MARK: DOTFILES_REPO

    func test_owner_slash_name_is_a_github_https_url() throws {
        XCTAssertEqual(try DotfilesSettings.repositoryURL("octo-cat/dot.files_2"), "https://github.com/octo-cat/dot.files_2.git")
        XCTAssertEqual(try DotfilesSettings.repositoryURL("octocat/dotfiles.git"), "https://github.com/octocat/dotfiles.git", "not .git.git")
    }

    func test_owner_slash_name_is_on_the_host_github_auth_gives_credentials_for() throws {
        func url(_ values: [String: String]) throws -> String? {
            try DotfilesSettings.read(Settings(environment: values.merging(["DOTFILES_REPO": "octocat/dotfiles"]) { a, _ in a }), home: "/home/dev8")?.repositoryURL
        }
        XCTAssertEqual(try url([:]), "https://github.com/octocat/dotfiles.git")
        XCTAssertEqual(try url(["GITHUB_API_URL": "https://ghe.example.com/api/v3"]), "https://ghe.example.com/octocat/dotfiles.git")
        XCTAssertEqual(try url(["GITHUB_API_URL": "https://ghe.example.com/api/v3", "GH_HOST": "git.example.com:8443"]), "https://git.example.com:8443/octocat/dotfiles.git")
        XCTAssertThrowsError(try url(["GH_HOST": "evil.example/x?"])) { error in
            XCTAssertTrue("\(error)".contains("GH_HOST='evil.example/x?': expected a host name"), "\(error)")
        }
    }

    func test_https_ssh_file_and_scp_style_addresses_are_kept_as_given() throws {
        for url in ["https://github.com/octocat/dotfiles.git", "https://git.example.com:8443/me/dots", "ssh://git@github.com/octocat/dotfiles.git",
                    "ssh://example.com:2222/srv/dots.git", "git@github.com:octocat/dotfiles.git", "work-github:octocat/dotfiles", "file:///srv/git/dots.git"] {
            XCTAssertEqual(try DotfilesSettings.repositoryURL(url), url)
        }
    }

    func test_a_url_with_a_token_in_it_is_refused_without_showing_the_token() {
        for url in ["https://octocat:ghp_s3cret@github.com/octocat/dotfiles.git", "https://ghp_s3cret@github.com/octocat/dotfiles.git",
                    "ssh://git:ghp_s3cret@github.com/octocat/dotfiles.git", "file://ghp_s3cret@/srv/dots"] {
            let message = refusal(url)
            XCTAssertTrue(message.hasPrefix("DOTFILES_REPO='"), message)
            XCTAssertTrue(message.contains("***@"), message)
            XCTAssertTrue(message.contains("user information is refused; credentials never go in the URL"), message)
            XCTAssertFalse(message.contains("s3cret"), message)
        }
    }

    func test_a_url_with_a_query_is_refused_without_showing_it() {
        let message = refusal("https://github.com/octocat/dotfiles.git?access_token=ghp_s3cret")
        XCTAssertEqual(message, "DOTFILES_REPO='https://github.com/octocat/dotfiles.git?***': a URL with a query is refused; "
            + "credentials never go in the URL: give a GitHub token through GH_TOKEN (github-auth's credential helper) or use an SSH key")
    }

    func test_a_value_beginning_with_a_dash_is_refused_as_an_option_to_git() {
        XCTAssertTrue(refusal("--upload-pack=touch /tmp/x").contains("begins with '-'"))
        XCTAssertTrue(refusal("-oProxyCommand=x:y").contains("begins with '-'"))
    }

    func test_a_host_or_user_beginning_with_a_dash_is_refused() {
        XCTAssertFalse(refusal("ssh://-oProxyCommand=touch%20x/dots").isEmpty)
        XCTAssertFalse(refusal("-oProxyCommand=x@host:dots").isEmpty)
        XCTAssertFalse(refusal("git@-oProxyCommand=x:dots").isEmpty)
    }

    func test_owner_and_name_must_follow_githubs_rules() {
        for bad in ["octocat", "octo cat/dots", "octocat/dots/extra", "octo$cat/dots", "/dots", "octocat/", "../dots", "octocat/..",
                    "octocat/.git", "octo@cat/dots", "ok/na;me", "ok/ñame"] {
            XCTAssertTrue(refusal(bad).hasPrefix("DOTFILES_REPO="), bad)
        }
    }

    func test_other_schemes_and_incomplete_urls_are_refused() {
        for bad in ["http://github.com/octocat/dotfiles.git", "git://github.com/octocat/dotfiles.git", "ftp://x/y", "https://github.com",
                    "https:///octocat/dots", "file://host/srv/dots", "file://", "git@github.com:", "@github.com:dots", ":dots"] {
            XCTAssertTrue(refusal(bad).hasPrefix("DOTFILES_REPO="), bad)
        }
    }

    // MARK: DOTFILES_REF

    func test_branch_tag_and_commit_names_are_accepted_as_refs() throws {
        for ref in ["main", "v1.2.3", "feature/new-shell", "release-2024.06", "0123456789abcdef0123456789abcdef01234567"] {
            XCTAssertEqual(try DotfilesSettings.checkedRef(ref), ref)
        }
    }

    func test_refs_git_could_read_otherwise_are_refused() {
        for bad in ["-b", "--upload-pack=x", "main..evil", "a b", "tab\there", "new\nline", "a~1", "a^", "a:b", "a?", "a*", "a[", "a\\b",
                    "@", "a@{1}", "a.lock", "a/", "/a", "a//b", "a.", "a/.hidden"] {
            XCTAssertThrowsError(try DotfilesSettings.checkedRef(bad), bad) { error in
                XCTAssertTrue("\(error)".hasPrefix("DOTFILES_REF="), "\(error)")
                XCTAssertFalse("\(error)".contains("\n"), "one line")
            }
        }
    }

    // MARK: DOTFILES_TARGET

    func test_the_target_defaults_to_dotfiles_in_the_home() throws {
        let settings = try XCTUnwrap(read(["DOTFILES_REPO": "octocat/dotfiles"]))
        XCTAssertEqual(settings.targetInHome, ".dotfiles")
        XCTAssertEqual(settings.target, "/home/dev8/.dotfiles")
        XCTAssertNil(settings.ref)
        XCTAssertNil(settings.installCommand)
    }

    func test_a_target_may_be_written_with_a_tilde_relative_or_absolute_inside_the_home() throws {
        for (given, inHome) in [("~/src/dots", "src/dots"), ("src/dots", "src/dots"), ("/home/dev8/src/dots", "src/dots"),
                                ("/home/dev8//./src/dots/", "src/dots"), ("~/./dots", "dots")] {
            XCTAssertEqual(try DotfilesSettings.targetInHome(given, home: Self.home), inHome, given)
        }
        XCTAssertEqual(try DotfilesSettings.targetInHome("dots", home: "/"), "dots")
    }

    func test_a_target_outside_the_home_or_the_home_itself_is_refused() {
        for bad in ["/etc/dots", "/home/dev8-other/dots", "/home/dev8/../root/dots", "~/../root", "../x", "a/../../x", "~", "~/",
                    "/home/dev8", ".", "~root/dots", "dots\nx"] {
            XCTAssertThrowsError(try DotfilesSettings.targetInHome(bad, home: Self.home), bad) { error in
                XCTAssertTrue("\(error)".hasPrefix("DOTFILES_TARGET="), "\(error)")
            }
        }
    }

    // MARK: the settings together

    func test_all_the_settings_are_read_and_checked_together() throws {
        let settings = try read(["DOTFILES_REPO": "git@github.com:octocat/dotfiles.git", "DOTFILES_REF": "v2",
                                 "DOTFILES_INSTALL_COMMAND": "./make.sh --all", "DOTFILES_TARGET": "~/code/dots"])
        XCTAssertEqual(settings, DotfilesSettings(repositoryURL: "git@github.com:octocat/dotfiles.git", ref: "v2", installCommand: "./make.sh --all",
                                                  targetInHome: "code/dots", target: "/home/dev8/code/dots"))
        XCTAssertThrowsError(try read(["DOTFILES_REPO": "octocat/dotfiles", "DOTFILES_REF": "-x"]))
        XCTAssertThrowsError(try read(["DOTFILES_REPO": "octocat/dotfiles", "DOTFILES_TARGET": "/tmp/dots"]))
    }

    func test_without_DOTFILES_REPO_there_are_no_dotfiles_and_its_options_alone_are_an_error() throws {
        XCTAssertNil(try read([:]))
        XCTAssertNil(try read(["DOTFILES_REPO": ""]))
        XCTAssertThrowsError(try read(["DOTFILES_REF": "main"])) { error in
            XCTAssertEqual("\(error)", "DOTFILES_REF is set but DOTFILES_REPO is not: set DOTFILES_REPO to OWNER/NAME or a URL")
        }
    }

    // MARK: what is installed

    func test_the_install_script_is_the_first_of_the_conventional_names() {
        var present: Set<String> = ["README.md", "install.sh", "install", "bootstrap.sh", "bootstrap", "script/bootstrap", "setup.sh", "setup", "script/setup"]
        var chosen: [String] = []
        while let script = DotfilesInstall.script(present: present) {
            chosen.append(script)
            present.remove(script)
        }
        XCTAssertEqual(chosen, ["install.sh", "install", "bootstrap.sh", "bootstrap", "script/bootstrap", "setup.sh", "setup", "script/setup"])
        XCTAssertNil(DotfilesInstall.script(present: ["README.md", "scripts/install.sh", "Install.sh", ".bashrc"]))
    }

    func test_without_a_script_the_dotfiles_at_the_top_are_linked_but_not_gits_own() {
        let names = [".zshrc", "README.md", ".git", ".", "..", ".github", ".gitignore", ".gitmodules", ".DS_Store", ".bashrc", ".config",
                     ".gitconfig", "bin", ".gitattributes"]
        XCTAssertEqual(DotfilesInstall.linkedEntries(topLevelNames: names), [".bashrc", ".config", ".gitattributes", ".gitconfig", ".zshrc"])
        XCTAssertEqual(DotfilesInstall.linkedEntries(topLevelNames: ["README.md", ".git"]), [])
    }
}
