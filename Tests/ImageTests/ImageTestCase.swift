import Foundation
import Glibc
import TestSupport
import XCTest

/// What the image tests share: containers they remove, a login key, docker,
/// ssh over a published loopback port and docker exec. Subclasses name the
/// image; without a Docker engine or the image (scripts/images builds both
/// with this build's berth) they are skipped.
class ImageTestCase: XCTestCase {
    class var image: String { "berth/base:dev" }
    var containers: [String] = []
    var keys = ""

    override func setUpWithError() throws {
        guard (try? docker(["image", "inspect", Self.image]).status) == .exited(0) else {
            throw XCTSkip("no Docker engine or no \(Self.image) (scripts/images builds it)")
        }
        keys = "/tmp/berth-image-keys-\(getpid())-\(Int.random(in: 0..<1_000_000))"
        mkdir(keys, 0o700)
        let keygen = try Subprocess(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "image-test", "-f", "\(keys)/id"])
        XCTAssertEqual(keygen.wait(), .exited(0))
    }

    override func tearDown() {
        for name in containers.reversed() { _ = try? docker(["rm", "-f", "-v", name]) }
        _ = system("rm -rf '\(keys)'")
    }

    @discardableResult
    func docker(_ arguments: [String], timeout: Double = 60) throws -> Subprocess {
        let run = try Subprocess(["docker"] + arguments, environment: ["PATH": "/usr/local/bin:/usr/bin:/bin"])
        run.wait(timeout: timeout)
        return run
    }

    var publicKey: String { (readText("\(keys)/id.pub") ?? "").trimmingCharacters(in: .newlines) }

    func uniqueName(_ kind: String) -> String {
        let name = "berth-test-\(kind)-\(getpid())-\(Int.random(in: 0..<1_000_000))"
        containers.append(name)
        return name
    }

    /// Starts a container of `image` with `flags` before it; returns its
    /// name and the loopback port of 2222 (nil `port`: the flags decide the
    /// network, e.g. `--network container:NAME`).
    func start(_ environment: [String: String], flags: [String] = [], port: Int? = Int.random(in: 20_000..<30_000),
               image: String? = nil) throws -> (name: String, port: Int) {
        let name = uniqueName("run")
        let variables = environment.sorted { $0.key < $1.key }.flatMap { ["-e", "\($0.key)=\($0.value)"] }
        let publish = port.map { ["-p", "127.0.0.1:\($0):2222"] } ?? []
        let run = try docker(["run", "-d", "--name", name] + publish + flags + variables + [image ?? Self.image])
        XCTAssertEqual(run.status, .exited(0), run.errorText)
        return (name, port ?? 0)
    }

    func ssh(_ port: Int, _ command: String, user: String = "dev8", extra: [String] = []) throws -> Subprocess {
        let run = try Subprocess(["ssh", "-i", "\(keys)/id", "-p", String(port), "-o", "StrictHostKeyChecking=no",
                                  "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=3",
                                  "-o", "LogLevel=ERROR"] + extra + ["\(user)@127.0.0.1", command], environment: ["PATH": "/usr/bin:/bin"])
        run.wait(timeout: 20)
        return run
    }

    /// Tries a key login until it works; the seconds it took.
    func waitForLogin(_ port: Int, since started: Double) throws -> Double? {
        while now() - started < 30 {
            if try ssh(port, "true").status == .exited(0) { return now() - started }
            usleep(50_000)
        }
        return nil
    }

    func exec(_ name: String, _ command: String) throws -> Subprocess {
        try docker(["exec", name, "sh", "-c", command])
    }

    /// World-readable files on the container's root file system holding
    /// `needle`. A canary file the scan must find proves it ran and could
    /// find; find's status cannot tell an error (grep's 1 for a batch
    /// without a match makes it non-zero too), so every error find or grep
    /// reports fails the scan, but for a file that vanished between find
    /// listing it and grep opening it (a service's temporary file).
    func worldReadableFiles(in name: String, containing needle: String) throws -> [String] {
        let canary = "berth-scan-canary-\(Int.random(in: 100_000..<999_999))"
        let scan = try exec(name, "echo \(canary) > /\(canary) && chmod 644 /\(canary) && "
                            + "find / -xdev -type f -perm -o+r -exec grep -l -F -e '\(needle)' -e \(canary) {} +; rm -f /\(canary)")
        let errors = scan.errorText.split(separator: "\n").filter { !$0.hasSuffix(": No such file or directory") }
        guard errors.isEmpty else {
            throw TestFailure("the scan for world-readable files could not read everything: \(errors.joined(separator: "\n"))")
        }
        var found = scan.outputText.split(separator: "\n").map(String.init)
        guard let index = found.firstIndex(of: "/" + canary) else {
            throw TestFailure("the scan for world-readable files did not run (its canary was not found): \(scan.status.map { "\($0)" } ?? "no status") \(scan.errorText)")
        }
        found.remove(at: index)
        return found
    }

    /// provision.json's steps: name → (status, detail/reason/message).
    func provisioned(_ name: String) throws -> [String: (status: String, text: String)] {
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(try exec(name, "cat /run/berth/provision.json").output)) as? [String: Any])
        var steps: [String: (status: String, text: String)] = [:]
        for step in report["steps"] as? [[String: Any]] ?? [] {
            let status = step["status"] as? String ?? ""
            let text = (step["detail"] ?? step["reason"] ?? step["message"]) as? String ?? ""
            steps[step["name"] as? String ?? ""] = (status, text)
        }
        return steps
    }

    /// Waits for Docker's health status to become `wanted`; the last one seen.
    func health(_ name: String, becomes wanted: String, within seconds: Double) throws -> String {
        var health = ""
        let deadline = now() + seconds
        while now() < deadline {
            health = try docker(["inspect", "-f", "{{.State.Health.Status}}", name]).outputText.trimmingCharacters(in: .whitespacesAndNewlines)
            if health == wanted { break }
            usleep(250_000)
        }
        return health
    }

    /// The pids of berth's services, by name (`berth status --json`).
    func servicePIDs(_ name: String) throws -> [String: Int] {
        let status = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(try exec(name, "berth status --json").output)) as? [[String: Any]])
        var pids: [String: Int] = [:]
        for service in status {
            if let name = service["name"] as? String, let pid = service["pid"] as? Int { pids[name] = pid }
        }
        return pids
    }
}
