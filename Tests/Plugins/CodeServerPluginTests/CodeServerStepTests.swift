import Foundation
import Glibc
import TestSupport
import XCTest

/// code-server end to end: berth as PID 1 in a throwaway root; the hash is
/// checked with libargon2's own verifier (the one code-server's node-argon2
/// wraps), from Python's ctypes.
final class CodeServerStepTests: XCTestCase {
    static let tools = ["/usr/lib/x86_64-linux-gnu/libargon2.so.1"]

    func provision(_ root: ThrowawayRoot, _ environment: [String: String]) throws -> Subprocess {
        try root.provision(environment, timeout: 60)
    }

    func step(_ root: ThrowawayRoot) throws -> [String: Any] {
        try XCTUnwrap(root.provisionedSteps()["code-server"])
    }

    func hash(in root: ThrowawayRoot) throws -> String {
        let config = try XCTUnwrap(root.read("/home/dev8/.config/code-server/config.yaml"))
        let line = try XCTUnwrap(config.split(separator: "\n").first { $0.hasPrefix("hashed-password: ") })
        return String(line.dropFirst("hashed-password: \"".count).dropLast())
    }

    /// libargon2's argon2id_verify, the password on stdin.
    func verifies(_ hash: String, _ password: String) throws -> Bool {
        let script = "import ctypes,sys; l=ctypes.CDLL('libargon2.so.1'); p=sys.stdin.buffer.read(); sys.exit(l.argon2id_verify(sys.argv[1].encode(), p, len(p)))"
        let file = "/tmp/berth-pw-\(getpid())"
        _ = FileManager.default.createFile(atPath: file, contents: Data(password.utf8), attributes: [.posixPermissions: 0o600])
        defer { unlink(file) }
        let input = open(file, O_RDONLY)
        defer { close(input) }
        let run = try Subprocess(["/usr/bin/python3", "-c", script, hash], environment: ["PATH": "/usr/bin:/bin"], input: input)
        return run.wait() == .exited(0)
    }

    func test_a_given_password_is_stored_only_as_an_argon2id_hash() throws {
        let root = try ThrowawayRoot(tools: Self.tools)
        let run = try provision(root, ["CODE_SERVER_PASSWORD": "correct horse battery staple"])
        XCTAssertEqual(run.status, .exited(0), run.errorText)
        XCTAssertEqual(try step(root)["status"] as? String, "ok", run.errorText)
        let config = try XCTUnwrap(root.read("/home/dev8/.config/code-server/config.yaml"))
        XCTAssertTrue(config.contains("\nbind-addr: 0.0.0.0:8080\nauth: password\nhashed-password: \"$argon2id$v=19$m=65536,t=3,p=4$"), config)
        XCTAssertTrue(try verifies(hash(in: root), "correct horse battery staple"))
        XCTAssertFalse(try verifies(hash(in: root), "wrong"))
        XCTAssertEqual(try root.files(containing: "correct horse"), [], "the plain password is nowhere")
        XCTAssertTrue(run.outputText.contains("\nPATH=") || run.outputText.hasPrefix("PATH="), "the command ran and printed its environment: \(run.outputText)")
        XCTAssertFalse(run.outputText.contains("CODE_SERVER_PASSWORD"), "the command does not inherit it")
        let info = try XCTUnwrap(root.status("/home/dev8/.config/code-server/config.yaml"))
        XCTAssertEqual(info.st_mode & 0o7777, 0o600)
        XCTAssertEqual(info.st_uid, 1000)
    }

    /// `berth hash-password` among berth's children, once it has exec'd
    /// (before, a child still shows berth's own argv).
    func hashHelper(of berth: pid_t) -> pid_t? {
        for child in (readText("/proc/\(berth)/task/\(berth)/children") ?? "").split(separator: " ") {
            if let pid = pid_t(child), readText("/proc/\(pid)/cmdline") == "/berth\0hash-password\0" { return pid }
        }
        return nil
    }

    func processState(_ pid: pid_t) -> Character? {
        guard let stat = readText("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return nil }
        return stat[stat.index(close, offsetBy: 2)]
    }

    func test_while_berth_hash_password_runs_no_process_has_the_password_in_its_argv_or_environment() throws {
        let root = try ThrowawayRoot(tools: Self.tools)
        let password = "hash-me-\(Int.random(in: 100_000..<999_999))"
        try root.write("/secrets/code-server-password", password + "\n", mode: 0o400)
        let run = try root.berth(["--", "/testkit", "env"], environment: ["PATH": "/usr/bin:/bin", "CODE_SERVER_PASSWORD_FILE": "/secrets/code-server-password"])
        let berth = try XCTUnwrap(childOf(run.pid), "unshare's child is berth")
        // The helper lives as long as one argon2id hash (64 MiB, 3 passes):
        // caught as soon as it has exec'd, it is held stopped while every
        // process on the machine is read.
        var found: pid_t?
        let deadline = now() + 30
        while found == nil, now() < deadline, processState(berth) != nil {
            found = hashHelper(of: berth)
        }
        let helper = try XCTUnwrap(found, "berth hash-password was never seen running: \(run.errorText)")
        kill(helper, SIGSTOP)
        defer { kill(helper, SIGCONT) }
        XCTAssertTrue(eventually(5) { processState(helper) == "T" }, "the helper is alive and held, not gone: state \(String(describing: processState(helper)))")
        var scanned = 0
        var helperSeen = false
        for entry in try FileManager.default.contentsOfDirectory(atPath: "/proc") {
            guard let pid = pid_t(entry), let argv = readText("/proc/\(pid)/cmdline") else { continue }
            scanned += 1
            if pid == helper { helperSeen = argv == "/berth\0hash-password\0" }
            XCTAssertFalse(argv.contains(password), "the password in the argv of \(pid): \(argv)")
            XCTAssertFalse((readText("/proc/\(pid)/environ") ?? "").contains(password), "the password in the environment of \(pid)")
        }
        XCTAssertTrue(helperSeen, "the scan read the running helper's argv (\(scanned) processes read)")
        kill(helper, SIGCONT)
        XCTAssertEqual(run.wait(timeout: 60), .exited(0), run.errorText)
        XCTAssertEqual(try step(root)["status"] as? String, "ok", run.errorText)
        XCTAssertTrue(try verifies(hash(in: root), password), "the helper that was held finished the hash")
    }

    func test_argv_scans_repeated_while_berth_hash_password_runs_never_see_the_password() throws {
        let root = try ThrowawayRoot(tools: Self.tools)
        let password = "scan-me-\(Int.random(in: 100_000..<999_999))"
        try root.write("/secrets/code-server-password", password + "\n", mode: 0o400)
        let run = try root.berth(["--", "/testkit", "env"], environment: ["PATH": "/usr/bin:/bin", "CODE_SERVER_PASSWORD_FILE": "/secrets/code-server-password"])
        let berth = try XCTUnwrap(childOf(run.pid), "unshare's child is berth")
        // Every process's argv, again and again, from berth's start until it
        // exits, the helper left to run (argon2id over 64 MiB takes a
        // while): bounded in count and time.
        var scans = 0
        var scansWithTheHelperRunning = 0
        var leaks: [String] = []
        let deadline = now() + 30
        while scans < 20_000, now() < deadline, processState(berth).map({ $0 != "Z" }) == true {
            scans += 1
            var helperRunning = false
            for entry in try FileManager.default.contentsOfDirectory(atPath: "/proc") {
                guard let pid = pid_t(entry), let argv = readText("/proc/\(pid)/cmdline") else { continue }
                if argv == "/berth\0hash-password\0", let state = processState(pid), state != "Z" { helperRunning = true }
                if argv.contains(password) { leaks.append("pid \(pid): \(argv)") }
            }
            if helperRunning { scansWithTheHelperRunning += 1 }
        }
        XCTAssertEqual(run.wait(timeout: 60), .exited(0), run.errorText)
        XCTAssertEqual(try step(root)["status"] as? String, "ok", run.errorText)
        XCTAssertTrue(try verifies(hash(in: root), password), "the helper that was scanned hashed the password")
        XCTAssertGreaterThan(scansWithTheHelperRunning, 0, "no scan ran while berth hash-password was alive (\(scans) scans)")
        XCTAssertEqual(leaks, [], "argv holding the password, in \(scans) scans (\(scansWithTheHelperRunning) while the helper ran)")
        print("argv scans: \(scans), \(scansWithTheHelperRunning) while berth hash-password ran")
    }

    func test_without_a_password_a_random_one_is_kept_in_a_0600_file_and_only_its_path_printed() throws {
        let root = try ThrowawayRoot(tools: Self.tools)
        let run = try provision(root, ["CODE_SERVER_BIND": "127.0.0.1:9000"])
        XCTAssertEqual(try step(root)["status"] as? String, "ok", run.errorText)
        let password = try XCTUnwrap(root.read("/home/dev8/.config/code-server/password")).trimmingCharacters(in: .newlines)
        XCTAssertEqual(password.count, 24)
        XCTAssertTrue(run.errorText.contains("the password is in /home/dev8/.config/code-server/password"), run.errorText)
        XCTAssertFalse(run.errorText.contains(password) || run.outputText.contains(password), "the password itself is never printed")
        let file = try XCTUnwrap(root.status("/home/dev8/.config/code-server/password"))
        XCTAssertEqual(file.st_mode & 0o7777, 0o600)
        XCTAssertEqual(file.st_uid, 1000)
        XCTAssertTrue(try verifies(hash(in: root), password))
        XCTAssertTrue(root.read("/home/dev8/.config/code-server/config.yaml")?.contains("bind-addr: 127.0.0.1:9000\n") == true)

        // A restart keeps the password and rewrites nothing.
        let before = root.read("/home/dev8/.config/code-server/config.yaml")
        XCTAssertEqual(try provision(root, ["CODE_SERVER_BIND": "127.0.0.1:9000"]).status, .exited(0))
        XCTAssertEqual(root.read("/home/dev8/.config/code-server/config.yaml"), before)
        XCTAssertEqual(root.read("/home/dev8/.config/code-server/password")?.trimmingCharacters(in: .newlines), password)
    }

    func test_the_users_own_settings_stay_and_a_plain_password_line_goes() throws {
        let root = try ThrowawayRoot(tools: Self.tools)
        XCTAssertEqual(mkdir(root.path + "/home/dev8/.config", 0o755), 0)
        XCTAssertEqual(mkdir(root.path + "/home/dev8/.config/code-server", 0o700), 0)
        try root.write("/home/dev8/.config/code-server/config.yaml", "bind-addr: 127.0.0.1:8080\nauth: password\npassword: 0ld-defau1t\ncert: false\nuser-data-dir: /workspace/.vscode\n", mode: 0o600)
        system("chown -R 1000:1000 '\(root.path)/home/dev8/.config'")
        XCTAssertEqual(try provision(root, ["CODE_SERVER_PASSWORD": "s3cret-pass"]).status, .exited(0))
        let config = try XCTUnwrap(root.read("/home/dev8/.config/code-server/config.yaml"))
        XCTAssertFalse(config.contains("0ld-defau1t"), config)
        XCTAssertTrue(config.hasSuffix("cert: false\nuser-data-dir: /workspace/.vscode\n"), config)
        XCTAssertEqual(config.components(separatedBy: "bind-addr:").count, 2, config)
    }

    func test_bad_values_fail_naming_the_variable_and_leave_the_config() throws {
        let root = try ThrowawayRoot(tools: Self.tools)
        XCTAssertEqual(try provision(root, ["CODE_SERVER_AUTH": "none"]).status, .exited(0))
        let good = root.read("/home/dev8/.config/code-server/config.yaml")
        XCTAssertTrue(good?.contains("auth: none\n") == true)
        for (environment, message) in [
            (["CODE_SERVER_AUTH": "github"], "CODE_SERVER_AUTH='github': expected password or none"),
            (["CODE_SERVER_BIND": "8080"], "CODE_SERVER_BIND='8080': expected HOST:PORT, like 0.0.0.0:8080"),
            (["CODE_SERVER_BIND": "0.0.0.0:99999"], "CODE_SERVER_BIND='0.0.0.0:99999': expected HOST:PORT, like 0.0.0.0:8080"),
            (["CODE_SERVER_PASSWORD_FILE": "/secrets/nope"], "CODE_SERVER_PASSWORD_FILE=/secrets/nope: cannot read: No such file or directory"),
        ] {
            XCTAssertEqual(try provision(root, environment).status, .exited(0))
            XCTAssertEqual(try step(root)["message"] as? String, message)
            XCTAssertEqual(root.read("/home/dev8/.config/code-server/config.yaml"), good)
        }
    }

    func test_without_libargon2_the_step_fails_with_what_to_install() throws {
        let root = try ThrowawayRoot()
        XCTAssertEqual(try provision(root, ["CODE_SERVER_PASSWORD": "pw"]).status, .exited(0))
        XCTAssertEqual(try step(root)["message"] as? String, "cannot hash the password: berth hash-password: libargon2 is not installed (apt-get install libargon2-1)")
        XCTAssertNil(root.status("/home/dev8/.config/code-server/config.yaml"))
    }
}
