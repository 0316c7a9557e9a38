@testable import BerthPlugins
import BerthCore
import Glibc
import TestSupport
import XCTest

/// The dotfiles installer with real git: repositories made in a scratch
/// directory and cloned by file:// URL into a scratch home.
final class DotfilesInstallerTests: XCTestCase {
    var scratch = ""
    var home: String { scratch + "/home" }
    var target: String { home + "/.dotfiles" }
    /// What the install scripts of these tests append to, one line a run.
    var marker: String { home + "/marker" }
    /// For the tests' own git: no system or user configuration of this machine.
    var gitEnvironment: [String: String] { ["PATH": "/usr/bin:/bin", "HOME": scratch, "GIT_CONFIG_NOSYSTEM": "1"] }

    override func setUpWithError() throws {
        var template = Array("/tmp/berth-dotfiles-XXXXXX".utf8CString)
        scratch = try XCTUnwrap(mkdtemp(&template).map { String(cString: $0) })
        XCTAssertEqual(mkdir(home, 0o755), 0)
    }

    override func tearDownWithError() throws {
        let removal = try Subprocess(["rm", "-rf", "--", scratch], environment: gitEnvironment)
        removal.wait()
    }

    // MARK: Helpers

    @discardableResult
    func git(_ arguments: [String], in directory: String) throws -> String {
        let run = try Subprocess(["git"] + arguments, environment: gitEnvironment, workingDirectory: directory)
        guard run.wait(timeout: 60) == .exited(0) else { throw TestFailure("git \(arguments): \(run.errorText)") }
        return run.outputText.trimmingCharacters(in: "\n")
    }

    func write(_ path: String, _ text: String, mode: mode_t = 0o644) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw TestFailure("open \(path): \(errno)") }
        defer { close(fd) }
        var bytes = Array(text.utf8)
        guard Glibc.write(fd, &bytes, bytes.count) == bytes.count, fchmod(fd, mode) == 0 else { throw TestFailure("write \(path)") }
    }

    /// A repository named `name` with one commit of `files` (path: text;
    /// paths in `executable` get mode 0755); its file:// URL.
    @discardableResult
    func makeRepository(_ name: String, _ files: [String: String], executable: Set<String> = []) throws -> String {
        let path = scratch + "/" + name
        XCTAssertEqual(mkdir(path, 0o755), 0)
        try git(["init", "--quiet", "--initial-branch=main"], in: path)
        try commit(files, executable: executable, in: name)
        return "file://" + path
    }

    /// A new commit of `files` on the branch checked out in repository `name`.
    func commit(_ files: [String: String], executable: Set<String> = [], in name: String, message: String = "dotfiles") throws {
        let path = scratch + "/" + name
        for (file, text) in files {
            if let slash = file.lastIndex(of: "/") { mkdir(path + "/" + file[..<slash], 0o755) }
            try write(path + "/" + file, text, mode: executable.contains(file) ? 0o755 : 0o644)
        }
        try git(["add", "--all"], in: path)
        try git(["-c", "user.name=Test", "-c", "user.email=test@example.invalid", "commit", "--quiet", "-m", message], in: path)
    }

    /// An install script that appends the repository's `greeting` to the marker.
    static let markingScript = "#!/bin/sh\nset -e\ncat greeting >> \"$HOME/marker\"\n"

    struct Run {
        let status: Int32
        let output: String
        var lines: [Substring] { output.split(separator: "\n") }
    }

    /// The installer as berth runs it, its lines and its children's output
    /// collected in one file.
    func install(_ url: String, ref: String? = nil, command: String? = nil, environment extra: [String] = [],
                 variables: [String: String] = [:], scriptTimeout: Duration = .seconds(60)) throws -> Run {
        var values = variables.merging(["DOTFILES_REPO": url]) { _, given in given }
        values["DOTFILES_REF"] = ref
        values["DOTFILES_INSTALL_COMMAND"] = command
        let settings = try XCTUnwrap(DotfilesSettings.read(Settings(environment: values), home: home))
        let outputPath = scratch + "/output"
        let output = open(outputPath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0o600)
        guard output >= 0 else { throw TestFailure("open output") }
        let status = DotfilesInstaller.run(settings, home: home, environment: ["PATH=/usr/bin:/bin", "HOME=" + home, "GIT_CONFIG_NOSYSTEM=1"] + extra,
                                           scriptTimeout: scriptTimeout, gitTimeout: .seconds(60),
                                           streams: .init(output: output, error: output))
        close(output)
        return Run(status: status, output: readText(outputPath) ?? "")
    }

    func linkDestination(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let length = readlink(path, &buffer, buffer.count)
        guard length >= 0 else { return nil }
        return String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    func isPlainFile(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG
    }

    // MARK: Clone and install

    func test_the_first_run_clones_the_repository_and_runs_its_install_script() throws {
        let url = try makeRepository("dotfiles", ["install.sh": Self.markingScript, "greeting": "hello from the repository\n"],
                                     executable: ["install.sh"])
        let run = try install(url)
        XCTAssertEqual(run.status, 0, run.output)
        XCTAssertEqual(readText(marker), "hello from the repository\n")
        XCTAssertEqual(try git(["config", "remote.origin.url"], in: target), url)
        XCTAssertTrue(run.lines.contains("dotfiles: running install.sh in ~/.dotfiles"), run.output)
        XCTAssertTrue(run.lines.contains("dotfiles: installed \(url) at its default branch"), run.output)

        var info = stat()
        XCTAssertEqual(lstat(home + "/.local/state/berth/dotfiles", &info), 0, "the record of the install")
        XCTAssertEqual(info.st_mode & 0o777, 0o600)
    }

    func test_an_install_script_without_the_execute_bit_is_run_by_sh() throws {
        let url = try makeRepository("dotfiles", ["install.sh": Self.markingScript, "greeting": "read by sh\n"])
        let run = try install(url)
        XCTAssertEqual(run.status, 0, run.output)
        XCTAssertEqual(readText(marker), "read by sh\n")
    }

    func test_a_second_run_with_the_same_settings_does_not_run_the_script_again() throws {
        let url = try makeRepository("dotfiles", ["install.sh": Self.markingScript, "greeting": "once\n"], executable: ["install.sh"])
        XCTAssertEqual(try install(url, ref: "main").status, 0)
        let second = try install(url, ref: "main")
        XCTAssertEqual(second.status, 0, second.output)
        XCTAssertEqual(second.lines, ["dotfiles: \(url) at main already installed"])
        XCTAssertEqual(readText(marker), "once\n", "the script ran once")
    }

    func test_a_changed_ref_fetches_checks_out_the_new_ref_and_installs_again() throws {
        let url = try makeRepository("dotfiles", ["install.sh": Self.markingScript, "greeting": "first\n"], executable: ["install.sh"])
        try git(["tag", "v1"], in: scratch + "/dotfiles")
        XCTAssertEqual(try install(url, ref: "v1").status, 0)
        // A branch made after the clone: only a fetch can bring it.
        try git(["checkout", "--quiet", "-b", "next"], in: scratch + "/dotfiles")
        try commit(["greeting": "next\n"], in: "dotfiles")

        let run = try install(url, ref: "next")
        XCTAssertEqual(run.status, 0, run.output)
        XCTAssertTrue(run.lines.contains("dotfiles: DOTFILES_REF changed from v1 to next: updating ~/.dotfiles"), run.output)
        XCTAssertEqual(readText(marker), "first\nnext\n")
        XCTAssertEqual(try git(["rev-parse", "--abbrev-ref", "HEAD"], in: target), "next", "a branch to commit to, not a detached head")
        XCTAssertEqual(try git(["rev-parse", "--abbrev-ref", "next@{upstream}"], in: target), "origin/next")
    }

    func test_a_commit_named_by_its_hash_is_checked_out() throws {
        let url = try makeRepository("dotfiles", ["install.sh": Self.markingScript, "greeting": "old\n"], executable: ["install.sh"])
        let old = try git(["rev-parse", "HEAD"], in: scratch + "/dotfiles")
        try commit(["greeting": "new\n"], in: "dotfiles")
        let run = try install(url, ref: old)
        XCTAssertEqual(run.status, 0, run.output)
        XCTAssertEqual(readText(marker), "old\n")
        XCTAssertEqual(try git(["rev-parse", "HEAD"], in: target), old)
    }

    func test_a_changed_repository_is_refused_and_the_clone_is_left_alone() throws {
        let first = try makeRepository("dotfiles", ["install.sh": Self.markingScript, "greeting": "first\n"], executable: ["install.sh"])
        let second = try makeRepository("other", ["install.sh": Self.markingScript, "greeting": "other\n"], executable: ["install.sh"])
        XCTAssertEqual(try install(first).status, 0)
        try write(target + "/local-change", "mine\n")

        let run = try install(second)
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.lines.contains("dotfiles: ~/.dotfiles was cloned from \(first), but DOTFILES_REPO is now \(second): "
            + "berth leaves it as it is; remove ~/.dotfiles to clone the new one"), run.output)
        XCTAssertEqual(try git(["config", "remote.origin.url"], in: target), first)
        XCTAssertEqual(readText(target + "/local-change"), "mine\n")
        XCTAssertEqual(readText(target + "/greeting"), "first\n")
        XCTAssertEqual(readText(marker), "first\n", "nothing installed from the other repository")
    }

    func test_a_ref_that_does_not_exist_is_a_clear_error() throws {
        let url = try makeRepository("dotfiles", ["install.sh": Self.markingScript, "greeting": "x\n"], executable: ["install.sh"])
        let run = try install(url, ref: "no-such-branch")
        XCTAssertNotEqual(run.status, 0)
        XCTAssertEqual(run.lines.last, "dotfiles: DOTFILES_REF=no-such-branch is not a branch, tag or commit of \(url)")
        XCTAssertNil(readText(marker), "nothing installed")
    }

    func test_a_file_name_given_as_the_ref_is_not_taken_for_a_path() throws {
        let url = try makeRepository("dotfiles", ["install.sh": Self.markingScript, "greeting": "x\n"], executable: ["install.sh"])
        let run = try install(url, ref: "greeting")
        XCTAssertNotEqual(run.status, 0)
        XCTAssertEqual(run.lines.last, "dotfiles: DOTFILES_REF=greeting is not a branch, tag or commit of \(url)")
    }

    func test_the_callers_GIT_DIR_does_not_redirect_the_clone() throws {
        let url = try makeRepository("dotfiles", ["install.sh": Self.markingScript, "greeting": "here\n"], executable: ["install.sh"])
        let run = try install(url, environment: ["GIT_DIR=\(scratch)/elsewhere", "GIT_WORK_TREE=\(scratch)/elsewhere"])
        XCTAssertEqual(run.status, 0, run.output)
        XCTAssertEqual(readText(marker), "here\n")
        XCTAssertEqual(access(scratch + "/elsewhere", F_OK), -1)
    }

    // MARK: What gets installed

    func test_without_a_script_the_dotfiles_are_linked_into_the_home() throws {
        let url = try makeRepository("dotfiles", [".vimrc": "set number\n", ".config/tool.conf": "x\n", ".gitignore": "*.swp\n", "README.md": "mine\n"])
        let run = try install(url)
        XCTAssertEqual(run.status, 0, run.output)
        XCTAssertEqual(linkDestination(home + "/.vimrc"), target + "/.vimrc")
        XCTAssertEqual(readText(home + "/.vimrc"), "set number\n")
        XCTAssertEqual(linkDestination(home + "/.config"), target + "/.config")
        XCTAssertNil(linkDestination(home + "/.gitignore"), "git's own file")
        XCTAssertNil(linkDestination(home + "/README.md"), "not a dotfile")
        XCTAssertNil(linkDestination(home + "/.git"))
        XCTAssertTrue(run.lines.contains("dotfiles: linked ~/.vimrc"), run.output)
    }

    func test_a_file_already_in_the_home_is_kept_and_not_linked() throws {
        let url = try makeRepository("dotfiles", [".bashrc": "from the repository\n", ".vimrc": "set number\n"])
        try write(home + "/.bashrc", "the user's own\n")
        let run = try install(url)
        XCTAssertEqual(run.status, 0, run.output)
        XCTAssertTrue(isPlainFile(home + "/.bashrc"))
        XCTAssertEqual(readText(home + "/.bashrc"), "the user's own\n")
        XCTAssertTrue(run.lines.contains("dotfiles: kept your ~/.bashrc (not linked)"), run.output)
        XCTAssertEqual(linkDestination(home + "/.vimrc"), target + "/.vimrc")
    }

    func test_DOTFILES_INSTALL_COMMAND_runs_instead_of_the_install_script() throws {
        let url = try makeRepository("dotfiles", ["install.sh": Self.markingScript, "greeting": "v1\n"], executable: ["install.sh"])
        let run = try install(url, command: "echo \"command $(cat greeting)\" >> \"$HOME/marker\"")
        XCTAssertEqual(run.status, 0, run.output)
        XCTAssertEqual(readText(marker), "command v1\n", "run in the clone, and install.sh not at all")
        XCTAssertTrue(run.lines.contains("dotfiles: running DOTFILES_INSTALL_COMMAND in ~/.dotfiles"), run.output)
    }

    func test_a_failing_script_gives_a_non_zero_status_and_is_run_again_at_the_next_start() throws {
        let script = "#!/bin/sh\ncat greeting >> \"$HOME/marker\"\nexit 3\n"
        let url = try makeRepository("dotfiles", ["install.sh": script, "greeting": "tried\n"], executable: ["install.sh"])
        let run = try install(url)
        XCTAssertNotEqual(run.status, 0)
        XCTAssertEqual(run.lines.last, "dotfiles: install.sh in ~/.dotfiles exited with status 3")

        let again = try install(url)
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.lines.contains("dotfiles: the last install did not finish: updating ~/.dotfiles and installing again"), again.output)
        XCTAssertEqual(readText(marker), "tried\ntried\n")
    }

    func test_a_script_past_its_timeout_is_killed_with_its_process_group() throws {
        let script = "#!/bin/sh\nsleep 300 &\necho $$ > \"$HOME/script.pid\"\nwait\n"
        let url = try makeRepository("dotfiles", ["install.sh": script], executable: ["install.sh"])
        let started = now()
        let run = try install(url, scriptTimeout: .seconds(2))
        XCTAssertLessThan(now() - started, 30, "bounded by the timeout, not by sleep 300")
        XCTAssertNotEqual(run.status, 0)
        XCTAssertEqual(run.lines.last, "dotfiles: install.sh in ~/.dotfiles did not finish within 2 s: "
            + "it was killed with everything it started in its process group")

        let group = try XCTUnwrap(readText(home + "/script.pid").flatMap { pid_t($0.trimmingCharacters(in: "\n")) })
        XCTAssertTrue(livingMembers(ofGroup: getpgrp()).contains(getpid()), "the look at /proc finds a living group")
        // The background sleep, orphaned, is reaped by whoever is init
        // here, if anyone: a zombie is dead, a member in any other state is not.
        XCTAssertTrue(eventually(10) { livingMembers(ofGroup: group).isEmpty }, "still running: \(livingMembers(ofGroup: group))")
    }

    func test_a_directory_berth_did_not_clone_is_used_as_it_is() throws {
        XCTAssertEqual(mkdir(target, 0o755), 0)
        try write(target + "/install.sh", "#!/bin/sh\necho \"the user's own\" >> \"$HOME/marker\"\n", mode: 0o755)
        // Nothing there to clone: the run must not try.
        let run = try install("file://" + scratch + "/no-such-repository")
        XCTAssertEqual(run.status, 0, run.output)
        XCTAssertEqual(readText(marker), "the user's own\n")
        XCTAssertTrue(run.lines.contains("dotfiles: ~/.dotfiles was already there and berth did not clone it: using it as it is"), run.output)
        XCTAssertEqual(access(target + "/.git", F_OK), -1)
    }

    func test_a_directory_berth_did_not_clone_is_not_fetched_into_when_the_ref_changes() throws {
        XCTAssertEqual(mkdir(target, 0o755), 0)
        try write(target + "/install.sh", "#!/bin/sh\necho \"the user's own\" >> \"$HOME/marker\"\n", mode: 0o755)
        let url = "file://" + scratch + "/no-such-repository"
        XCTAssertEqual(try install(url).status, 0)
        let run = try install(url, ref: "v2")
        XCTAssertNotEqual(run.status, 0)
        XCTAssertEqual(run.lines.last, "dotfiles: ~/.dotfiles was there before berth and is used as it is, so a new DOTFILES_REPO or "
            + "DOTFILES_REF does not apply to it: remove ~/.dotfiles to clone \(url) there")
        XCTAssertEqual(readText(marker), "the user's own\n", "installed once")
    }

    func test_a_file_where_the_clone_would_go_is_left_alone() throws {
        try write(target, "not a directory\n")
        let url = try makeRepository("dotfiles", ["install.sh": Self.markingScript, "greeting": "x\n"], executable: ["install.sh"])
        let run = try install(url)
        XCTAssertNotEqual(run.status, 0)
        XCTAssertEqual(run.lines, ["dotfiles: ~/.dotfiles exists and is not a directory (a file or a symlink): berth leaves it alone; "
            + "remove it or set DOTFILES_TARGET to another place"])
        XCTAssertEqual(readText(target), "not a directory\n")
    }

    // MARK: git's environment

    func test_git_runs_without_prompts_and_without_the_callers_repository() {
        let environment = DotfilesInstaller.gitEnvironment([
            "PATH=/usr/bin:/bin", "GIT_DIR=/elsewhere/.git", "GIT_WORK_TREE=/elsewhere", "GIT_ASKPASS=/usr/lib/ssh/askpass",
            "GIT_TERMINAL_PROMPT=1", "GIT_CONFIG_GLOBAL=/home/dev8/.gitconfig",
        ])
        XCTAssertEqual(environment, ["PATH=/usr/bin:/bin", "GIT_CONFIG_GLOBAL=/home/dev8/.gitconfig", "GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS="])
    }
}

/// Processes of `group` that are not zombies, from /proc.
func livingMembers(ofGroup group: pid_t) -> [pid_t] {
    (directoryNames("/proc") ?? []).compactMap { name -> pid_t? in
        guard let pid = pid_t(name), let stat = readText("/proc/\(name)/stat"), let close = stat.lastIndex(of: ")") else { return nil }
        // After the command's ')': state, ppid, pgrp.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 2, pid_t(fields[2]) == group, fields[0] != "Z" else { return nil }
        return pid
    }
}

private extension String {
    func trimmingCharacters(in characters: String) -> String {
        var text = Substring(self)
        while let last = text.last, characters.contains(last) { text = text.dropLast() }
        while let first = text.first, characters.contains(first) { text = text.dropFirst() }
        return String(text)
    }
}
