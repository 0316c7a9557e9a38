import Foundation
import Glibc
import TestSupport
import XCTest

/// The attack of issue 11 item 4, played for real: the workspace user (uid
/// 1000, no capabilities) swaps the directories root provisions into for
/// symlinks to /etc as fast as the kernel allows, while the real berth binary
/// provisions every step that writes the user's home, again and again.
final class UserTreeRaceTests: XCTestCase {
    static let tools = ["/usr/bin/gh", "/usr/bin/git", "/usr/bin/env", "/usr/lib/x86_64-linux-gnu/libcurl.so.4",
                        "/usr/lib/x86_64-linux-gnu/libargon2.so.1"]
    /// Every directory some step creates, chowns or writes into, as
    /// (parent below the home, name).
    static let swapped = [("", ".config"), (".config", "gh"), (".config", "code-server"), (".config", "berth"), ("", ".ssh"),
                          (".local/share/code-server", "User"), ("", ".codex"), ("", ".gemini"), ("", ".claude")]

    /// Run as uid 1000: each directory is exchanged with a sibling symlink
    /// to /etc by renameat2(RENAME_EXCHANGE), so the name is always either
    /// the real directory or the link, never absent. Parents are opened
    /// with O_NOFOLLOW so the swapper itself never leaves the throwaway
    /// root. Stops after `limit` swaps or `seconds`, whichever comes first;
    /// prints how many exchanges succeeded.
    static let swapper = """
    import ctypes, os, sys, time
    libc = ctypes.CDLL(None, use_errno=True)
    home, seconds, limit = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    pairs = [p.split('/') for p in sys.argv[4:]]
    def parent(path):
        fd = os.open(home, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        for part in [p for p in path.split(':') if p]:
            try:
                nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            finally:
                os.close(fd)
            fd = nfd
        return fd
    deadline, done, tries = time.time() + seconds, 0, 0
    while tries < limit and time.time() < deadline:
        for where, name in pairs:
            tries += 1
            try:
                fd = parent(where)
            except OSError:
                continue
            if libc.renameat2(fd, name.encode(), fd, (name + '.swap').encode(), 2) == 0:
                done += 1
            os.close(fd)
    print(done, flush=True)
    """

    func test_a_symlink_swap_race_on_the_users_config_dirs_never_reaches_etc() throws {
        let github = try FakeGitHub()
        github.users(["ghp_race1": ("octocat", 583231, "The Octocat", nil)])
        let root = try ThrowawayRoot(tools: Self.tools)
        try root.write("/etc/hostname", "workspace\n")
        let home = root.path + "/home/dev8"
        for (parent, name) in Self.swapped {
            let directory = parent.isEmpty ? name : parent + "/" + name
            XCTAssertEqual(system("mkdir -p '\(home)/\(directory)'"), 0)
            XCTAssertEqual(symlink("/etc", "\(home)/\(directory).swap"), 0)
        }
        XCTAssertEqual(system("chown -hR 1000:1000 '\(home)'"), 0)
        let etcBefore = try listing(root.path + "/etc")

        let environment = [
            "PATH": "/usr/bin:/bin", "BERTH_STEP_TIMEOUT": "30",
            "SSH_PUBLIC_KEY": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl race",
            "ANTHROPIC_API_KEY": "sk-ant-race", "OPENAI_API_KEY": "sk-openai-race", "GEMINI_API_KEY": "gemini-race",
            "CODE_SERVER_PASSWORD": "correct horse battery staple",
            "GITHUB_TOKEN": "ghp_race1", "GITHUB_API_URL": github.url, "GH_HOST": "github.com",
        ]
        let seconds = 12.0
        let pairs = Self.swapped.map { "\($0.0.replacingOccurrences(of: "/", with: ":"))/\($0.1)" }
        let swapper = try Subprocess(["/usr/bin/setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", "--inh-caps=-all",
                                      "/usr/bin/python3", "-c", Self.swapper, home, String(seconds), "5000000"] + pairs,
                                     environment: ["PATH": "/usr/bin:/bin"])
        var runs = 0
        var failedSteps = 0
        let started = now()
        while now() - started < seconds - 1, runs < 40 {
            // As PID 1 of its own PID namespace with /proc mounted, as in a
            // container: hash-password is found through /proc/self/exe.
            let run = try root.berth(["provision"], environment: environment)
            let status = run.wait(timeout: 60)
            runs += 1
            XCTAssertTrue(status == .exited(0) || status == .exited(1), "run \(runs): \(status) \(run.errorText)")
            let steps = try root.provisionedSteps()
            for name in ["ssh-keys", "github-auth", "ai-cli", "code-server"] {
                let step = try XCTUnwrap(steps[name], "run \(runs): no \(name) in provision.json")
                switch step["status"] as? String {
                case "ok":
                    break
                case "failed":
                    failedSteps += 1
                    // A clear error: the path under the home and the refused
                    // operation, never a crash or a half-written file.
                    let message = step["message"] as? String ?? ""
                    XCTAssertTrue(message.contains("/home/dev8") && message.contains("failed:"), "run \(runs) \(name): \(message)")
                default:
                    XCTFail("run \(runs) \(name): \(step)")
                }
            }
        }
        swapper.wait(timeout: 20)
        let exchanges = Int(swapper.outputText.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        print("race: \(runs) provisioning runs, \(failedSteps) steps refused, \(exchanges) directory/symlink exchanges")
        XCTAssertGreaterThan(exchanges, 1000, "the attack must really have run: \(swapper.errorText)")
        XCTAssertGreaterThan(runs, 2)
        XCTAssertEqual(try listing(root.path + "/etc"), etcBefore, "root created, chowned or wrote something under /etc (\(runs) runs, \(failedSteps) failed steps, \(exchanges) swaps)")
        XCTAssertTrue(try root.files(containing: "ghp_race1").allSatisfy { $0.hasPrefix("/home/dev8/") }, "the token only ever lands in the home")
    }

    /// Name, type, owner, mode, size, mtime and link target of everything
    /// under `directory`, itself included.
    /// Throws when find could not list it: two failed listings would compare equal.
    private func listing(_ directory: String) throws -> [String] {
        let run = try Subprocess(["find", directory, "-printf", "%P %y %U:%G %m %s %T@ %l\n"], environment: ["PATH": "/usr/bin:/bin"])
        let status = run.wait()
        guard status == .exited(0), !run.output.isEmpty else { throw TestFailure("find \(directory) did not list it: \(status), \(run.errorText)") }
        return run.outputText.split(separator: "\n").map(String.init).sorted()
    }
}
