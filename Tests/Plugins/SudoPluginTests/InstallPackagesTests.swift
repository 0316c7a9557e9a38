import Foundation
import Glibc
import TestSupport
import XCTest

/// `berth install-packages`, the one command BERTH_SUDO=packages lets the
/// workspace user run as root, run as root in a throwaway root with
/// everything the user controls set against it: their HOME, a PATH that
/// starts in their home, APT_CONFIG naming their apt.conf with a hook,
/// ~/.aptrc, an `apt-get` of theirs in that PATH and in the directory it is
/// started from. That is more than sudo lets through (env_reset drops all of
/// it; sudo itself needs PAM, which the root has not: the image tests run
/// the real sudo). The system's apt-get is a fake that records its argv,
/// directory and environment, so no test reaches the network.
final class InstallPackagesTests: XCTestCase {
    static let attackerEnvironment = [
        "PATH": "/home/dev8/bin:/usr/bin:/bin", "HOME": "/home/dev8", "APT_CONFIG": "/home/dev8/apt.conf",
        "DEBIAN_FRONTEND": "readline", "SUDO_USER": "dev8", "LC_ALL": "C",
    ]
    static let fixedEnvironment = [
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive", "HOME": "/root", "LC_ALL": "C.UTF-8",
    ]

    /// A root whose /usr/bin/apt-get appends what it was given to
    /// /apt-get.calls (root's), and whose user has planted their own.
    func root() throws -> ThrowawayRoot {
        let root = try ThrowawayRoot()
        for directory in ["/usr", "/usr/bin", "/home/dev8/bin"] { mkdir(root.path + directory, 0o755) }
        try root.write("/usr/bin/apt-get", """
            #!/bin/sh
            { printf 'argv'; for a in "$@"; do printf ' [%s]' "$a"; done; printf '\\ncwd '; pwd; export -p; echo end; } >> /apt-get.calls

            """, mode: 0o755)
        let planted = "#!/bin/sh\necho ran >> /tmp/attacker-code-ran\n"
        try root.write("/home/dev8/bin/apt-get", planted, mode: 0o755)
        try root.write("/home/dev8/apt-get", planted, mode: 0o755)
        try root.write("/home/dev8/apt.conf", "APT::Update::Pre-Invoke { \"echo ran >> /tmp/attacker-code-ran\"; };\n")
        try root.write("/home/dev8/.aptrc", "APT::Update::Pre-Invoke { \"echo ran >> /tmp/attacker-code-ran\"; };\n")
        for file in ["/home/dev8/bin", "/home/dev8/bin/apt-get", "/home/dev8/apt-get", "/home/dev8/apt.conf", "/home/dev8/.aptrc"] {
            chown(root.path + file, 1000, 1000)
        }
        return root
    }

    /// berth install-packages as root, started in the user's home with the
    /// user's environment.
    func installPackages(_ root: ThrowawayRoot, _ names: [String], user: String? = nil) throws -> Subprocess {
        let chroot = ["/usr/sbin/chroot"] + (user.map { ["--userspec=\($0)"] } ?? []) + [root.path]
        let run = try Subprocess(chroot + ["/bin/sh", "-c", "cd /home/dev8 && exec /berth install-packages \"$@\"", "sh"] + names,
                                 environment: Self.attackerEnvironment)
        run.wait(timeout: 30)
        return run
    }

    /// Each call of the system's apt-get: its arguments, directory and environment.
    func aptGetCalls(_ root: ThrowawayRoot) -> [(arguments: String, directory: String, environment: [String: String])] {
        guard let text = root.read("/apt-get.calls") else { return [] }
        return text.components(separatedBy: "end\n").dropLast().map { call in
            var lines = call.split(separator: "\n").map(String.init)
            let arguments = lines.removeFirst()
            let directory = String(lines.removeFirst().dropFirst("cwd ".count))
            var environment: [String: String] = [:]
            for line in lines {
                guard line.hasPrefix("export "), let equals = line.firstIndex(of: "=") else { continue }
                let name = String(line[line.index(line.startIndex, offsetBy: 7)..<equals])
                environment[name] = String(line[line.index(after: equals)...]).trimmingCharacters(in: CharacterSet(charactersIn: "'"))
            }
            return (arguments, directory, environment)
        }
    }

    func test_refused_arguments_exit_2_with_one_line_naming_them_and_nothing_runs() throws {
        let root = try root()
        let tooMany = (1...33).map { "package\($0)" }
        let cases: [(names: [String], named: String)] = [
            (["-o"], "'-o'"), (["--"], "'--'"), (["hello", "--"], "'--'"), (["-oAPT::Update::Pre-Invoke::=sh"], "'-oAPT::Update::Pre-Invoke::=sh'"),
            (["-y", "hello"], "'-y'"), (["hello", "--reinstall"], "'--reinstall'"),
            (["./x.deb"], "'./x.deb'"), (["/tmp/x.deb"], "'/tmp/x.deb'"), (["x.deb"], "'x.deb'"), (["hello.dsc"], "'hello.dsc'"),
            (["hello world"], "'hello world'"), (["hello vim"], "'hello vim'"), (["hello\nvim"], "'hello\\x0avim'"),
            (["vim=2:9.0.1378-2"], "'vim=2:9.0.1378-2'"), (["vim/bookworm-backports"], "'vim/bookworm-backports'"),
            (["vim-"], "'vim-'"), (["hello", "sudo-"], "'sudo-'"), (["Vim"], "'Vim'"), (["vim:mips"], "'vim:mips'"), (["?essential"], "'?essential'"),
            ([""], "''"), (tooMany, "'package33' is number 33"), ([], "give one or more Debian package names"),
        ]
        for (names, named) in cases {
            let run = try installPackages(root, names)
            XCTAssertEqual(run.status, .exited(2), "\(names): \(run.errorText)")
            XCTAssertTrue(run.errorText.hasPrefix("berth install-packages: "), run.errorText)
            XCTAssertTrue(run.errorText.contains(named), "\(names) named in \(run.errorText)")
            XCTAssertEqual(run.errorText.filter { $0 == "\n" }.count, 1, run.errorText)
            XCTAssertEqual(run.outputText, "", "\(names)")
        }
        XCTAssertNil(root.read("/apt-get.calls"), "the system's apt-get never ran")
        XCTAssertNil(root.status("/tmp/attacker-code-ran"), "nor the user's")
    }

    func test_package_names_reach_only_the_systems_apt_get_with_a_fixed_environment_whatever_the_callers() throws {
        let root = try root()
        let run = try installPackages(root, ["hello", "libc6:amd64", "python3.11", "g++", "0ad"])
        XCTAssertEqual(run.status, .exited(0), run.errorText)
        XCTAssertNil(root.status("/tmp/attacker-code-ran"), "nothing of the user's ran: not their apt-get, not their apt.conf's hook")
        let calls = aptGetCalls(root)
        XCTAssertEqual(calls.map(\.arguments), [
            "argv [update]",
            "argv [install] [-y] [--no-install-recommends] [--no-remove] [--] [hello] [libc6:amd64] [python3.11] [g++] [0ad]",
        ], "no package lists in the root: updated first")
        for call in calls {
            XCTAssertEqual(call.directory, "/")
            XCTAssertEqual(call.environment.filter { $0.key != "PWD" }, Self.fixedEnvironment)
        }
    }

    func test_package_lists_are_updated_only_when_missing_or_a_day_old() throws {
        let root = try root()
        XCTAssertEqual(system("mkdir -p '\(root.path)/var/lib/apt/lists'"), 0)
        let list = "/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages"
        try root.write(list, "Package: hello\n")
        let fresh = try installPackages(root, ["hello"])
        XCTAssertEqual(fresh.status, .exited(0), fresh.errorText)
        XCTAssertEqual(aptGetCalls(root).map(\.arguments), ["argv [install] [-y] [--no-install-recommends] [--no-remove] [--] [hello]"])

        var times = [timespec(tv_sec: time(nil) - 25 * 3600, tv_nsec: 0), timespec(tv_sec: time(nil) - 25 * 3600, tv_nsec: 0)]
        XCTAssertEqual(utimensat(AT_FDCWD, root.path + list, &times, 0), 0)
        unlink(root.path + "/apt-get.calls")
        let stale = try installPackages(root, ["hello"])
        XCTAssertEqual(stale.status, .exited(0), stale.errorText)
        XCTAssertEqual(aptGetCalls(root).map(\.arguments).first, "argv [update]")
    }

    func test_the_workspace_user_without_sudo_is_refused_and_nothing_runs() throws {
        let root = try root()
        let run = try installPackages(root, ["hello"], user: "1000:1000")
        XCTAssertEqual(run.status, .exited(1), run.errorText)
        XCTAssertEqual(run.errorText, "berth install-packages: needs root: sudo berth install-packages NAME... (allowed when BERTH_SUDO=packages)\n")
        XCTAssertNil(root.read("/apt-get.calls"))
    }

    /// sudo matches `berth install-packages *` against the arguments joined
    /// by spaces, so it lets through one argument that only starts with
    /// the verb: berth must refuse it, not run it as the init's command.
    func test_one_argument_that_starts_with_the_verb_is_bad_usage_not_a_command_for_the_init() throws {
        let root = try root()
        try root.write("/bin/install-packages hello", "#!/bin/sh\necho ran >> /tmp/attacker-code-ran\n", mode: 0o755)
        for argument in ["install-packages hello", "install-packages -- hello", "install-packages /bin/sh"] {
            let run = try Subprocess(["/usr/sbin/chroot", root.path, "/berth", argument], environment: Self.attackerEnvironment)
            XCTAssertEqual(run.wait(timeout: 30), .exited(2), "\(argument): \(run.errorText)")
            XCTAssertTrue(run.errorText.hasPrefix("berth \(argument): "), run.errorText)
        }
        XCTAssertNil(root.status("/tmp/attacker-code-ran"))
        XCTAssertNil(root.status("/run/berth"), "the init never started")
        XCTAssertNil(root.read("/apt-get.calls"))
    }
}
