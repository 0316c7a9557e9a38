import Foundation
import Glibc
import TestSupport
import XCTest

/// The workspace image with secrets given as files, as a user would run it:
/// GitHub (the fake API) reachable from the container, then gh, git, the AI
/// keys and code-server's config checked inside a real SSH session.
final class WorkspaceImageTests: ImageTestCase {
    override class var image: String { "berth/workspace:dev" }
    var volumes: [String] = []

    override func tearDown() {
        super.tearDown()
        for volume in volumes { _ = try? docker(["volume", "rm", "-f", volume]) }
    }

    /// A container that only holds a network namespace and the published
    /// SSH port, with the fake GitHub API on its loopback: the workspace
    /// joins it (`--network container:NAME`) and reaches GitHub at
    /// 127.0.0.1 while nothing listens beyond namespaces the test made.
    func network() throws -> (name: String, port: Int, github: FakeGitHub) {
        let name = uniqueName("net")
        let port = Int.random(in: 20_000..<30_000)
        // Bounded: removed by tearDown, gone by itself after 10 minutes.
        let run = try docker(["run", "-d", "--name", name, "-p", "127.0.0.1:\(port):2222", "--entrypoint", "sleep", BaseImageTests.image, "600"])
        XCTAssertEqual(run.status, .exited(0), run.errorText)
        let pid = try docker(["inspect", "-f", "{{.State.Pid}}", name]).outputText.trimmingCharacters(in: .whitespacesAndNewlines)
        let github = try FakeGitHub(launcher: ["/usr/bin/nsenter", "--net=/proc/\(pid)/ns/net"])
        return (name, port, github)
    }

    /// Files for `-v DIR:/run/secrets:ro`, root's and 0600 as Docker or
    /// Kubernetes secrets are.
    func secrets(_ files: [String: String]) throws -> String {
        let directory = keys + "/secrets"
        mkdir(directory, 0o700)
        for (name, text) in files {
            let fd = open(directory + "/" + name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw TestFailure("create secret \(name)") }
            var bytes = Array(text.utf8)
            _ = write(fd, &bytes, bytes.count)
            close(fd)
        }
        return directory
    }

    static func random(_ prefix: String) -> String {
        prefix + String((0..<24).map { _ in "abcdefghijklmnopqrstuvwxyz0123456789".randomElement()! })
    }

    func test_an_ssh_session_has_gh_and_git_credentials_ai_keys_and_code_server_config_from_file_secrets() throws {
        let token = Self.random("ghp_")
        let password = Self.random("pw-")
        let aiKey = Self.random("sk-ant-")
        let (net, port, github) = try network()
        github.users([token: (login: "octo", id: 42, name: "Octo Cat", email: "octo@example.com")])
        let directory = try secrets(["github-token": token + "\n", "code-server-password": password, "anthropic-key": aiKey, "ssh.pub": publicKey])

        let started = now()
        let (name, _) = try start([
            "SSH_PUBLIC_KEY_FILE": "/run/secrets/ssh.pub",
            "GITHUB_TOKEN_FILE": "/run/secrets/github-token",
            "GITHUB_API_URL": github.url,
            "GH_HOST": "github.com",
            "CODE_SERVER_PASSWORD_FILE": "/run/secrets/code-server-password",
            "ANTHROPIC_API_KEY_FILE": "/run/secrets/anthropic-key",
        ], flags: ["--network", "container:\(net)", "-v", "\(directory):/run/secrets:ro"], port: nil)
        let logs = { () -> String in
            let run = try? self.docker(["logs", name])
            return (run?.outputText ?? "") + (run?.errorText ?? "")
        }
        let ready = try XCTUnwrap(try waitForLogin(port, since: started), "no key login: \(logs())")
        print("time to ready, workspace image with GitHub auth (docker run -> ssh login): \(String(format: "%.2f", ready)) s")

        let steps = try provisioned(name)
        for step in ["ssh-keys", "sshd", "github-auth", "token-refresh", "ai-cli", "code-server"] {
            XCTAssertEqual(steps[step]?.status, "ok", "\(step): \(steps[step]?.text ?? "missing")")
        }
        XCTAssertEqual(steps["sudo"]?.status, "skipped")
        XCTAssertEqual(github.requests.first, "GET /user Bearer")

        // Inside an SSH session, as the user works.
        XCTAssertEqual(try ssh(port, "gh auth token").outputText, token + "\n")
        let credential = try ssh(port, "printf 'protocol=https\\nhost=github.com\\n\\n' | git credential fill")
        XCTAssertEqual(credential.status, .exited(0), credential.errorText)
        XCTAssertTrue(credential.outputText.contains("password=\(token)\n"), credential.outputText)
        XCTAssertEqual(try ssh(port, "git config user.name; git config user.email").outputText, "Octo Cat\nocto@example.com\n")
        XCTAssertEqual(try ssh(port, "bash -lc 'echo $ANTHROPIC_API_KEY'").outputText, aiKey + "\n")
        XCTAssertNotEqual(try ssh(port, "sudo -n true").status, .exited(0), "no sudo rights without BERTH_SUDO")
        let config = try ssh(port, "cat ~/.config/code-server/config.yaml").outputText
        XCTAssertTrue(config.contains("hashed-password: \"$argon2id$"), config)
        XCTAssertFalse(config.contains(password), "the password itself is not in config.yaml")
        XCTAssertFalse(config.split(separator: "\n").contains { $0.hasPrefix("password:") }, config)
        XCTAssertEqual(try ssh(port, "test -e ~/.config/code-server/password; echo $?").outputText, "1\n", "no generated password when one is given")
        for tool in ["node --version", "python3 -m pip --version", "go version", "cargo --version"] {
            XCTAssertEqual(try ssh(port, tool).status, .exited(0), tool)
        }

        // Said once, and berth carries on without them.
        if try exec(name, "command -v code-server").status != .exited(0) {
            XCTAssertTrue(logs().contains("berth: code-server is not installed"), logs())
        }
        XCTAssertFalse(logs().contains("berth: workspace-supervisor is not installed"), logs())

        // No secret in logs, argv, .bashrc, world-readable files or any
        // process's environment (sshd's, berth's own included).
        for secret in [token, password, aiKey] {
            XCTAssertFalse(logs().contains(secret), "docker logs")
            let argv = try exec(name, "cat /proc/[0-9]*/cmdline | tr '\\0' ' '").outputText
            XCTAssertTrue(argv.contains("cat /proc/[0-9]*/cmdline"), "the scan read argv (its own shell's among them): \(argv)")
            XCTAssertFalse(argv.contains(secret), "argv")
            let environments = try exec(name, "cat /proc/[0-9]*/environ | tr '\\0' '\\n'").outputText
            XCTAssertTrue(environments.contains("PATH="), "the scan read environments")
            XCTAssertFalse(environments.contains(secret), "environments")
            let profile = try exec(name, "cat /home/dev8/.bashrc /home/dev8/.profile")
            XCTAssertEqual(profile.status, .exited(0), "the scan read both files: \(profile.errorText)")
            XCTAssertFalse(profile.outputText.contains(secret), ".bashrc")
            XCTAssertEqual(try worldReadableFiles(in: name, containing: secret), [], "world-readable files holding a secret")
        }
        let sshd = try XCTUnwrap(try servicePIDs(name)["sshd"])
        let environment = try exec(name, "tr '\\0' '\\n' < /proc/\(sshd)/environ").outputText
        XCTAssertFalse(environment.contains("_FILE="), "sshd gets no secret paths either: \(environment)")
    }

    func test_a_new_container_on_the_same_home_volume_changes_nothing_and_keeps_the_generated_password() throws {
        let volume = "berth-test-home-\(getpid())-\(Int.random(in: 0..<1_000_000))"
        volumes.append(volume)
        let environment = ["SSH_PUBLIC_KEY": publicKey, "CODE_SERVER_AUTH": "password", "OPENAI_API_KEY": Self.random("sk-proj-")]
        let home = ["-v", "\(volume):/home/dev8"]
        // Every file under the home with its mode, owner and checksum.
        let snapshot = "cd /home/dev8 && find . -type f | sort | while read -r f; do echo \"$(stat -c '%a %U' \"$f\") $(sha256sum < \"$f\") $f\"; done"

        let first = try start(environment, flags: home)
        XCTAssertNotNil(try waitForLogin(first.port, since: now()))
        let logs = try docker(["logs", first.name]).errorText
        XCTAssertTrue(logs.contains("/home/dev8/.config/code-server/password"), "berth prints where the password is: \(logs)")
        let generated = try exec(first.name, "cat /home/dev8/.config/code-server/password").outputText
        XCTAssertFalse(generated.isEmpty)
        XCTAssertFalse(logs.contains(generated.trimmingCharacters(in: .newlines)), "but not the password")
        XCTAssertEqual(try exec(first.name, "stat -c '%a %U' /home/dev8/.config/code-server/password").outputText, "600 dev8\n")
        let before = try exec(first.name, snapshot).outputText
        XCTAssertTrue(before.contains("./.config/code-server/config.yaml") && before.contains("./.ssh/authorized_keys"), before)
        XCTAssertEqual(try docker(["rm", "-f", first.name]).status, .exited(0))

        let second = try start(environment, flags: home)
        XCTAssertNotNil(try waitForLogin(second.port, since: now()))
        XCTAssertEqual(try exec(second.name, snapshot).outputText, before, "same files, modes, owners and contents")
        XCTAssertEqual(try provisioned(second.name)["code-server"]?.status, "ok")
    }

    func test_the_readme_first_command_starts_a_workspace_and_says_how_to_connect() throws {
        let repository = String(#filePath.dropLast("Tests/ImageTests/WorkspaceImageTests.swift".count))
        // The release binaries scripts/test built: this test runs inside
        // `swift test`, which holds .build against another SwiftPM build.
        let binaries = repository + ".build/release"
        guard access(binaries + "/workspace-supervisor", X_OK) == 0 else { throw XCTSkip("no \(binaries) binaries (scripts/build-release makes them)") }
        let name = uniqueName("readme")
        volumes += ["\(name)-home", "\(name)-workspace"]
        let sshPort = Int.random(in: 20_000..<30_000)
        let environment = ["PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin:/opt/swift/usr/bin", "HOME": "/root", "WORKSPACE_NAME": name,
                           "WORKSPACE_SSH_PORT": String(sshPort), "WORKSPACE_IDE_PORT": String(sshPort + 1), "BERTH_BIN_DIR": binaries]
        let run = try Subprocess([repository + "scripts/workspace"], environment: environment)
        XCTAssertEqual(run.wait(timeout: 600), .exited(0), run.errorText)
        let lines = run.outputText.split(separator: "\n").map(String.init)
        XCTAssertNotNil(lines.first { $0.hasPrefix("workspace \(name) is ready") }, run.outputText)
        let command = try XCTUnwrap(lines.first { $0.hasPrefix("  ssh: ") }, run.outputText).dropFirst("  ssh: ".count)
        XCTAssertTrue(command.contains("-p \(sshPort) ") && command.hasSuffix("dev8@127.0.0.1"), String(command))
        XCTAssertTrue(lines.contains { $0.contains("/home/dev8/.config/code-server/password") }, run.outputText)
        // The printed command, as a user pastes it (from the repository).
        let session = try Subprocess(["/bin/sh", "-c", "cd '\(repository)' && \(command) -o BatchMode=yes id -un"], environment: environment)
        XCTAssertEqual(session.wait(timeout: 20), .exited(0), session.errorText)
        XCTAssertEqual(session.outputText, "dev8\n")
        XCTAssertEqual(try exec(name, "stat -c '%a %U' /home/dev8/.config/code-server/password").outputText, "600 dev8\n")

        let stop = try Subprocess([repository + "scripts/workspace", "stop"], environment: environment)
        XCTAssertEqual(stop.wait(timeout: 60), .exited(0), stop.errorText)
        XCTAssertNotEqual(try docker(["inspect", name]).status, .exited(0), "removed")
    }

    func test_an_unreadable_file_secret_leaves_a_running_unhealthy_container_with_the_error() throws {
        let (name, port) = try start(["SSH_PUBLIC_KEY": publicKey, "GITHUB_TOKEN_FILE": "/run/secrets/absent"],
                                     flags: ["--health-interval", "1s", "--health-start-period", "1s", "--health-retries", "1"])
        XCTAssertNotNil(try waitForLogin(port, since: now()), "the rest of the workspace still works")
        let error = "GITHUB_TOKEN_FILE=/run/secrets/absent: cannot read: No such file or directory"
        XCTAssertEqual(try provisioned(name)["github-auth"]?.status, "failed")
        XCTAssertEqual(try provisioned(name)["github-auth"]?.text, error)
        XCTAssertTrue(try docker(["logs", name]).errorText.contains(error))
        let health = try exec(name, "berth health")
        XCTAssertEqual(health.status, .exited(1))
        XCTAssertTrue(health.outputText.contains(error), health.outputText)
        XCTAssertEqual(try self.health(name, becomes: "unhealthy", within: 20), "unhealthy")
        XCTAssertEqual(try docker(["inspect", "-f", "{{.State.Running}} {{.RestartCount}}", name]).outputText, "true 0\n", "not a crash loop")
    }
}
