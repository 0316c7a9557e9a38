import Foundation
import Glibc
import TestSupport
import XCTest

/// The original Dev8 images' contract, which berth's images keep: each
/// documented check run exactly as the issue writes it (a shell line with
/// the image's name for BASE or WORKSPACE), and the tools it lists answering
/// to their usual names.
class OriginalImageContract: ImageTestCase {
    /// `line` as a user types it, with `IMAGE` replaced by this image.
    func documentedCheck(_ line: String) throws -> Subprocess {
        let command = line.replacingOccurrences(of: "IMAGE", with: Self.image)
        let run = try Subprocess(["/bin/sh", "-c", command], environment: ["PATH": "/usr/local/bin:/usr/bin:/bin"])
        run.wait(timeout: 120)
        return run
    }

    /// Each tool asked for its version as the workspace user, all in one
    /// container (a `docker run` each costs a berth start): the ones that
    /// did not answer, with what they said. A tool given with arguments
    /// (`tmux -V`) is run with those instead of `--version`.
    func toolsNotAnswering(_ tools: [String]) throws -> [String] {
        let (name, _) = try start([:], port: nil)
        var failed: [String] = []
        for tool in tools {
            let words = tool.split(separator: " ").map(String.init)
            let run = try docker(["exec", "-u", "dev8", name] + words + (words.count == 1 ? ["--version"] : []), timeout: 120)
            if run.status != .exited(0) {
                failed.append("\(tool): \(run.status.map { "\($0)" } ?? "no status") \(run.outputText) \(run.errorText)")
            }
        }
        return failed
    }

    func label(_ key: String) throws -> String {
        try docker(["image", "inspect", "-f", "{{index .Config.Labels \"\(key)\"}}", Self.image]).outputText
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

final class BaseImageContractTests: OriginalImageContract {
    func test_the_base_images_documented_checks_pass_as_written() throws {
        let supervisor = try documentedCheck("docker run --rm IMAGE test -f /usr/local/bin/workspace-supervisor")
        XCTAssertEqual(supervisor.status, .exited(0), supervisor.errorText)
        let gh = try documentedCheck("docker run --rm IMAGE gh --version")
        XCTAssertEqual(gh.status, .exited(0), gh.errorText)
        XCTAssertTrue(gh.outputText.hasPrefix("gh version 2."), gh.outputText)
        let port = try documentedCheck("docker run --rm IMAGE grep \"Port 2222\" /etc/ssh/sshd_config")
        XCTAssertEqual(port.status, .exited(0), port.errorText)
        XCTAssertEqual(port.outputText, "Port 2222\n", "the original images' active Port line")
    }

    func test_the_base_images_tools_answer_to_their_usual_names() throws {
        let tools = ["curl", "wget", "git", "git-lfs", "gh", "ssh -V", "vim", "nvim", "nano", "tmux -V", "screen", "zsh", "jq", "yq",
                     "unzip -v", "zip -v", "tar", "gcc", "make", "cmake", "pkg-config", "htop", "ps", "fusermount3", "mount.nfs",
                     "rg", "fd", "bat"]
        XCTAssertEqual(try toolsNotAnswering(tools), [])
        // netcat-openbsd and cifs-utils have no version flag.
        let (name, _) = try start([:], port: nil)
        XCTAssertEqual(try exec(name, "command -v nc; command -v mount.cifs").outputText, "/usr/bin/nc\n/usr/sbin/mount.cifs\n")
        XCTAssertEqual(try exec(name, "readlink /usr/local/bin/fd /usr/local/bin/bat").outputText, "/usr/bin/fdfind\n/usr/bin/batcat\n")
    }

    func test_the_images_sshd_config_is_hardened_below_berths_drop_in_which_still_decides() throws {
        // The image's own file, before berth writes anything.
        let settings = try docker(["run", "--rm", "--entrypoint", "sh", Self.image, "-c",
                                   "grep -nE '^(Include|Port|PermitRootLogin|PasswordAuthentication|KbdInteractiveAuthentication|PubkeyAuthentication|MaxAuthTries|X11Forwarding) ' /etc/ssh/sshd_config"])
        let lines = settings.outputText.split(separator: "\n").map { $0.split(separator: ":", maxSplits: 1).map(String.init) }
        XCTAssertEqual(lines.first?.last, "Include /etc/ssh/sshd_config.d/*.conf", "the drop-in is read first: \(settings.outputText)")
        XCTAssertEqual(Set(lines.dropFirst().map { $0.last ?? "" }),
                       ["Port 2222", "PermitRootLogin no", "PasswordAuthentication no", "KbdInteractiveAuthentication no", "PubkeyAuthentication yes",
                        "MaxAuthTries 3", "X11Forwarding no"], settings.outputText)

        // Another SSH_PORT: sshd listens there only (berth gives it as -p,
        // which replaces the file's Port 2222 rather than adding to it).
        let port = Int.random(in: 20_000..<30_000)
        let (name, _) = try start(["SSH_PUBLIC_KEY": publicKey, "SSH_PORT": "2200"], flags: ["-p", "127.0.0.1:\(port):2200"], port: nil)
        XCTAssertNotNil(try waitForLogin(port, since: now()), (try? docker(["logs", name]).errorText) ?? "")
        // Listening sockets (state 0A) by local port, from the container's own tables.
        let tables = try exec(name, "cat /proc/net/tcp /proc/net/tcp6")
        XCTAssertEqual(tables.status, .exited(0), tables.errorText)
        let listening = Set(tables.outputText.split(separator: "\n").compactMap { line -> Int? in
            let fields = line.split(separator: " ")
            guard fields.count > 3, fields[3] == "0A", let colon = fields[1].lastIndex(of: ":") else { return nil }
            return Int(fields[1][fields[1].index(after: colon)...], radix: 16)
        })
        XCTAssertTrue(listening.contains(2200), "sshd listens on SSH_PORT: \(listening.sorted())")
        XCTAssertFalse(listening.contains(2222), "the file's Port 2222 opened no listener: \(listening.sorted())")
        XCTAssertFalse(try docker(["logs", name]).errorText.contains("Bind to port"), "sshd bound each port once")
    }

    func test_the_workspace_user_is_not_given_sudo_by_the_image() throws {
        let (name, _) = try start([:], port: nil)
        let refused = try docker(["exec", "-u", "dev8", name, "sudo", "-n", "true"])
        XCTAssertNotEqual(refused.status, .exited(0), "sudo rights come from BERTH_SUDO, not the image")
        XCTAssertEqual(try exec(name, "grep -rlw dev8 /etc/sudoers /etc/sudoers.d; echo done").outputText, "done\n")
    }
}

final class WorkspaceImageContractTests: OriginalImageContract {
    override class var image: String { "berth/workspace:dev" }

    /// The issue's checks, each with its tool and what its output starts
    /// with; a tool the image's dev.berth.left-out label names must be
    /// absent instead.
    static let documentedChecks: [(line: String, tool: String, prefix: String)] = [
        ("docker run --rm IMAGE node --version", "node", "v"),
        ("docker run --rm IMAGE python --version", "python", "Python 3.11"),
        ("docker run --rm IMAGE go version", "go", "go version go1."),
        ("docker run --rm IMAGE rustc --version", "rustc", "rustc 1."),
        ("docker run --rm IMAGE bun --version", "bun", ""),
        ("docker run --rm IMAGE code-server --version", "code-server", ""),
        ("docker run --rm IMAGE aws --version", "aws", "aws-cli/2."),
        ("docker run --rm IMAGE az version", "az", "{"),
    ]
    /// The other tools only their upstreams carry, by the same rule.
    static let upstreamTools: [(line: String, tool: String, prefix: String)] = [
        ("docker run --rm IMAGE pnpm --version", "pnpm", ""),
        ("docker run --rm IMAGE rust-analyzer --version", "rust-analyzer", "rust-analyzer "),
        ("docker run --rm IMAGE claude --version", "ai-clis", ""),
        ("docker run --rm IMAGE codex --version", "ai-clis", ""),
    ]

    func test_the_workspace_images_documented_checks_pass_as_written_or_the_label_names_the_tool_left_out() throws {
        let leftOut = try label("dev.berth.left-out").split(separator: " ").map(String.init)
        let why = try label("dev.berth.left-out.why")
        XCTAssertTrue(leftOut.isEmpty || !why.isEmpty, "the image says why")
        XCTAssertEqual(Set(leftOut).subtracting(["code-server", "bun", "rust-analyzer", "pnpm", "ai-clis"]), [], "names only upstream tools: \(leftOut)")
        for check in Self.documentedChecks + Self.upstreamTools {
            let run = try documentedCheck(check.line)
            if leftOut.contains(check.tool) {
                XCTAssertEqual(run.status, .exited(127), "\(check.tool) is named left out, so it must be absent: \(run.outputText)")
            } else {
                XCTAssertEqual(run.status, .exited(0), "\(check.line): \(run.errorText)")
                XCTAssertTrue(run.outputText.hasPrefix(check.prefix), "\(check.line): \(run.outputText)")
            }
        }
    }

    func test_the_workspace_tools_answer_to_their_usual_names() throws {
        let tools = ["fd", "bat", "yarn", "npm", "python", "pip", "poetry", "pipenv", "black", "pytest", "ipython", "jupyter-lab",
                     "cargo", "rustfmt", "cargo-clippy", "aws", "az", "git-lfs"]
        XCTAssertEqual(try toolsNotAnswering(tools), [])
    }

    func test_go_uses_dev8s_gopath_in_docker_run_and_ssh_sessions() throws {
        let run = try docker(["run", "--rm", Self.image, "go", "env", "GOPATH"], timeout: 120)
        XCTAssertEqual(run.outputText, "/home/dev8/go\n", run.errorText)
        let (_, port) = try start(["SSH_PUBLIC_KEY": publicKey])
        XCTAssertNotNil(try waitForLogin(port, since: now()))
        XCTAssertEqual(try ssh(port, "bash -lc 'go env GOPATH; case :$PATH: in *:/home/dev8/go/bin:*) echo on PATH;; esac'").outputText,
                       "/home/dev8/go\non PATH\n")
        XCTAssertEqual(try ssh(port, "stat -c %U /home/dev8/go").outputText, "dev8\n")
    }
}
