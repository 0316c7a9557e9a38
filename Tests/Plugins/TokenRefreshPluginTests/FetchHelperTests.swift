import Foundation
import Glibc
import TestSupport
import XCTest

/// HTTP outside PID 1: berth as PID 1 in a throwaway root with gh and git,
/// GitHub auth and a token endpoint on 127.0.0.1, and `berth fetch` doing
/// every request as nobody.
final class FetchHelperTests: XCTestCase {
    static let tools = ["/usr/bin/gh", "/usr/bin/git", "/usr/bin/env", "/usr/lib/x86_64-linux-gnu/libcurl.so.4"]
    static let networkLibraries = ["libcurl", "libssl", "libcrypto", "libgnutls", "libgssapi", "libldap", "libssh"]
    var github: FakeGitHub!

    override func setUpWithError() throws {
        github = try FakeGitHub()
        github.users(["ghp_first": ("octocat", 1, nil, nil), "ghp_second": ("octocat", 1, nil, nil)])
    }

    override func tearDown() {
        github = nil
    }

    func start(_ root: ThrowawayRoot, _ environment: [String: String]) throws -> (run: Subprocess, berth: pid_t) {
        let run = try root.berth(["--", "/testkit", "print-signals", "\(SIGTERM)", "60"], environment: ["PATH": "/usr/bin:/bin"].merging(environment) { $1 })
        XCTAssertEqual(run.readLine(timeout: 20)?.hasPrefix("ready"), true, "the command started: \(run.errorText)")
        return (run, try XCTUnwrap(childOf(run.pid), "unshare's child is berth"))
    }

    func stop(_ run: Subprocess, _ berth: pid_t) {
        kill(berth, SIGTERM)
        XCTAssertEqual(run.wait(timeout: 10), .exited(0))
    }

    func statusField(_ pid: pid_t, _ name: String) -> String? {
        readText("/proc/\(pid)/status")?.split(separator: "\n").first { $0.hasPrefix(name + ":") }
            .map { $0.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces) }
    }

    func residentKiB(_ pid: pid_t) throws -> Int {
        let field = try XCTUnwrap(statusField(pid, "VmRSS"), "VmRSS of \(pid)")
        return try XCTUnwrap(Int(field.split(separator: " ")[0]))
    }

    /// Network libraries in `pid`'s mappings; fails if the maps are unreadable.
    func mappedNetworkLibraries(_ pid: pid_t) throws -> Set<String> {
        let maps = try XCTUnwrap(readText("/proc/\(pid)/maps"), "maps of \(pid)")
        var found: Set<String> = []
        for line in maps.split(separator: "\n") {
            guard let path = line.split(separator: " ", omittingEmptySubsequences: true).last, path.hasPrefix("/") else { continue }
            let file = path.split(separator: "/").last.map(String.init) ?? ""
            if Self.networkLibraries.contains(where: { file.hasPrefix($0) }) { found.insert(file) }
        }
        return found
    }

    /// The helper berth started for `verb`, found by its argv among berth's children.
    func fetchHelper(of berth: pid_t, verb: String) -> pid_t? {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = pid_t(name), let ppid = statusField(pid, "PPid"), ppid == String(berth),
                  let argv = readText("/proc/\(pid)/cmdline"), argv == "/proc/self/exe\0fetch\0\(verb)\0" else { continue }
            return pid
        }
        return nil
    }

    /// What the release build links into berth's executable (--static-swift-stdlib,
    /// -static-libgcc, libstdc++.a) and a debug build loads as libraries.
    static let berthsOwnLibraries = ["libswift", "libFoundationEssentials", "libdispatch", "libBlocksRuntime", "libstdc++", "libgcc_s"]

    /// Resident KiB of `pid`: all of it (VmRSS), its anonymous part, and
    /// all but berth's own code (its executable, and in a debug build the
    /// Swift runtime it loads). The last is what a library mapped into PID 1
    /// (libcurl and its ~25 dependencies), its heap or its threads' stacks
    /// would grow; berth's code pages depend only on which of its functions
    /// ran (provisioning itself touches ~1 MiB of them).
    func memory(_ pid: pid_t) throws -> (total: Int, anonymous: Int, outsideBerth: Int) {
        let smaps = try XCTUnwrap(readText("/proc/\(pid)/smaps"), "smaps of \(pid)")
        let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe")
        var total = 0, anonymous = 0, ownCode = 0
        var mapping = ""
        for line in smaps.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard let first = fields.first else { continue }
            if first.contains("-") && !first.hasSuffix(":") {
                mapping = fields.count >= 6 ? fields[5...].joined(separator: " ") : ""
            } else if first == "Rss:", fields.count > 1, let kib = Int(fields[1]) {
                total += kib
                let file = mapping.split(separator: "/").last.map(String.init) ?? ""
                if mapping == executable || (mapping.hasPrefix("/") && Self.berthsOwnLibraries.contains { file.hasPrefix($0) }) { ownCode += kib }
            } else if first == "Anonymous:", fields.count > 1, let kib = Int(fields[1]) {
                anonymous += kib
            }
        }
        XCTAssertGreaterThan(ownCode, 0, "berth's own mappings were found in smaps")
        return (total, anonymous, total - ownCode)
    }

    func test_pid_1_never_maps_libcurl_or_tls_and_its_memory_while_tokens_refresh_stays_as_without_github_auth() throws {
        let root = try ThrowawayRoot(tools: Self.tools)
        try root.write("/secrets/endpoint-auth", "endpoint-credential\n", mode: 0o400)
        github.set("endpoint-auth", "endpoint-credential")
        github.set("endpoint", "ghp_first")
        let githubEnvironment = ["GITHUB_API_URL": github.url, "GH_HOST": "github.com", "GITHUB_TOKEN": "ghp_first",
                                 "GITHUB_TOKEN_URL": github.url + "/token", "GITHUB_TOKEN_URL_AUTH_FILE": "/secrets/endpoint-auth",
                                 "BERTH_TOKEN_REFRESH_INTERVAL": "2"]
        // Three PID 1s: a plain init; the same settings with both steps
        // disabled (provisioning runs, no GitHub), measured after ~4 s; and
        // GitHub auth with a refresh every 2 s, sampled through 5 refreshes.
        var baselines: [(total: Int, anonymous: Int, outsideBerth: Int)] = []
        for environment in [[:], githubEnvironment.merging(["BERTH_DISABLE": "github-auth,token-refresh"]) { $1 }] {
            let baseline = try start(root, environment)
            usleep(4_000_000)
            baselines.append(try memory(baseline.berth))
            XCTAssertEqual(try mappedNetworkLibraries(baseline.berth), [])
            stop(baseline.run, baseline.berth)
        }
        XCTAssertEqual(github.requests, [], "the baselines made no request")

        let refreshing = try start(root, githubEnvironment)
        var mappedByPID1: Set<String> = []
        var mappedByHelpers: Set<String> = []
        var tokenFetches: Int { github.requests.filter { $0.hasPrefix("GET /token") }.count }
        let deadline = now() + 30
        var served = "ghp_first"
        var samples: [Int] = []
        var nextSample = now() + 1
        while tokenFetches < 5 && now() < deadline {
            if now() >= nextSample {
                samples.append(try memory(refreshing.berth).total)
                nextSample += 0.25
            }
            // A new token after every fetch: each is validated with GET /user too.
            let next = tokenFetches % 2 == 0 ? "ghp_second" : "ghp_first"
            if next != served {
                github.set("endpoint", next)
                served = next
            }
            mappedByPID1.formUnion(try mappedNetworkLibraries(refreshing.berth))
            for verb in ["token", "github-user"] {
                if let helper = fetchHelper(of: refreshing.berth, verb: verb) {
                    // It may be gone already: a helper lives for one request.
                    for line in (readText("/proc/\(helper)/maps") ?? "").split(separator: "\n") {
                        let file = line.split(separator: "/").last.map(String.init) ?? ""
                        if Self.networkLibraries.contains(where: { file.hasPrefix($0) }) { mappedByHelpers.insert(file) }
                    }
                }
            }
            usleep(20_000)
        }
        XCTAssertGreaterThanOrEqual(tokenFetches, 5, "five refreshes ran: \(github.requests)")
        XCTAssertGreaterThanOrEqual(github.requests.filter { $0 == "GET /user Bearer" }.count, 3, "new tokens were validated: \(github.requests)")
        // Between two refreshes (the fifth has just been fetched; the next is ~2 s away).
        usleep(500_000)
        let measured = try memory(refreshing.berth)
        XCTAssertEqual(mappedByPID1, [], "PID 1 never maps a network or TLS library")
        stop(refreshing.run, refreshing.berth)
        // A refresh under way when berth stops ends with berth's SIGTERM; any other failure is a bug.
        let failures = refreshing.run.errorText.split(separator: "\n").filter { $0.contains("keeping the last good token") && !$0.contains("(berth is stopping)") }
        XCTAssertEqual(failures, [], "every refresh succeeded")
        print("PID 1 KiB (resident/anonymous/outside berth's own code): plain \(baselines[0]), GitHub steps disabled \(baselines[1]), "
              + "refreshing \(measured) after \(tokenFetches) refreshes, VmRSS samples \(samples); helpers mapped \(mappedByHelpers.sorted())")
        // "Without GitHub auth" is the second baseline: the same settings and
        // provisioning, both steps disabled. Against it, what GitHub auth and
        // eight refreshes add to PID 1 outside berth's own code pages (which
        // vary by ~100 KiB with which functions ran) must stay under 256 KiB;
        // libcurl and its dependencies in PID 1 added ~8 MiB.
        XCTAssertLessThanOrEqual(measured.anonymous, baselines[1].anonymous + 256, "GitHub auth adds under 256 KiB of private memory to PID 1")
        XCTAssertLessThanOrEqual(measured.outsideBerth, baselines[1].outsideBerth + 256,
                                 "GitHub auth adds under 256 KiB to PID 1 outside its own code (libraries, heap, stacks)")
        // While refreshing, PID 1 drops the code pages a refresh ran a
        // second after it: its resident memory stays where it is without
        // GitHub auth (the median sample; within 256 KiB, the noise of
        // which pages fault-around brings back).
        let median = samples.sorted()[samples.count / 2]
        XCTAssertLessThanOrEqual(median, baselines[1].total + 256, "PID 1's VmRSS while tokens refresh: median of \(samples)")
    }

    func ghToken(_ root: ThrowawayRoot) throws -> String {
        try root.asUser(["gh", "auth", "token"]).outputText
    }

    func test_the_fetch_helper_runs_as_nobody_with_no_new_privileges_and_no_token_in_its_argv_or_environment() throws {
        let root = try ThrowawayRoot(tools: Self.tools)
        github.set("user-mode", "hang")
        let run = try root.berth(["--", "/testkit", "env"], environment: [
            "PATH": "/usr/bin:/bin", "GITHUB_API_URL": github.url, "GH_HOST": "github.com", "GITHUB_TOKEN": "ghp_first",
            "SSL_CERT_DIR": "/etc/ssl/certs", "NO_PROXY": "127.0.0.1", "UNRELATED_KEY": "s3cret-unrelated", "BERTH_HTTP_TIMEOUT": "30",
        ])
        let berth = try XCTUnwrap(childOf(run.pid))
        var helper: pid_t?
        XCTAssertTrue(eventually { helper = fetchHelper(of: berth, verb: "github-user"); return helper != nil && !github.requests.isEmpty },
                      "the helper's request is hanging")
        let pid = try XCTUnwrap(helper)
        XCTAssertEqual(statusField(pid, "Uid"), "65534\t65534\t65534\t65534")
        XCTAssertEqual(statusField(pid, "Gid"), "65534\t65534\t65534\t65534")
        XCTAssertEqual(statusField(pid, "Groups"), "")
        XCTAssertEqual(statusField(pid, "NoNewPrivs"), "1")
        XCTAssertEqual(statusField(pid, "CapEff"), "0000000000000000")
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/cwd"), root.path, "working directory /")
        let environ = try XCTUnwrap(readText("/proc/\(pid)/environ"))
        let names = Set(environ.split(separator: "\0").map { String($0.prefix { $0 != "=" }) })
        XCTAssertEqual(names, ["PATH", "SSL_CERT_DIR", "NO_PROXY"], "PATH and what TLS needs, nothing else")
        for secret in ["ghp_first", "s3cret-unrelated"] {
            XCTAssertFalse(environ.contains(secret), "\(secret) in the helper's environment")
            XCTAssertFalse(try XCTUnwrap(readText("/proc/\(pid)/cmdline")).contains(secret), "\(secret) in the helper's argv")
        }
        XCTAssertEqual(try mappedNetworkLibraries(berth), [], "PID 1 maps no network library while its helper waits")
        XCTAssertTrue(try mappedNetworkLibraries(pid).contains { $0.hasPrefix("libcurl") }, "the helper is the one that loaded libcurl")
        let started = now()
        kill(berth, SIGTERM)
        XCTAssertEqual(run.wait(timeout: 5), .exited(128 + SIGTERM))
        XCTAssertLessThan(now() - started, 1.0, "SIGTERM during the hanging request ends berth at once")
        XCTAssertNil(root.status("/home/dev8/.config/gh/hosts.yml"))
    }

    func test_hostile_token_endpoint_answers_are_refused_by_the_helper_and_nothing_is_written() throws {
        let root = try ThrowawayRoot(tools: Self.tools)
        try root.write("/secrets/endpoint-auth", "x", mode: 0o400)
        github.set("endpoint-auth", "x")
        let cases: [(mode: String, body: String, cause: String)] = [
            ("huge", "", "failed: answer larger than 65536 bytes"),
            ("", "{\"token\": \"ghp_a\\nX-Evil: 1\"}", "answered something that is not a GitHub token"),
            ("", "ghp_a\u{1b}[31m", "answered something that is not a GitHub token"),
            ("", "{\"token\": \"ghp_", "answered JSON without a \"token\" string"),
        ]
        for (mode, body, cause) in cases {
            github.set("endpoint-mode", mode)
            github.set("endpoint", body)
            let run = try root.berth(["provision", "--only", "token-refresh"], environment: [
                "PATH": "/usr/bin:/bin", "GITHUB_API_URL": github.url, "GITHUB_TOKEN_URL": github.url + "/token",
                "GITHUB_TOKEN_URL_AUTH_FILE": "/secrets/endpoint-auth",
            ])
            XCTAssertEqual(run.wait(), .exited(1), "\(mode) \(body)")
            XCTAssertTrue(run.errorText.contains("GITHUB_TOKEN_URL: GET \(github.url)/token \(cause)"), run.errorText)
            XCTAssertNil(root.status("/home/dev8/.config/gh/hosts.yml"), "nothing written for \(mode) \(body)")
            XCTAssertEqual(try root.files(containing: "X-Evil").filter { !$0.hasPrefix("/usr/") }, [])
        }
        XCTAssertEqual(github.requests.filter { $0.hasPrefix("GET /user") }, [], "no refused token went on to GitHub")
    }

    func test_credentials_in_the_token_and_api_urls_reach_no_log_no_health_output_and_no_file() throws {
        let root = try ThrowawayRoot(tools: Self.tools)
        let secrets = ["tokuser", "tokpass-1", "QUERY-TOKEN-1", "FRAGMENT-1", "apiuser", "apipass-2", "QUERY-API-2"]
        let tokenURL = "http://tokuser:tokpass-1@127.0.0.1:\(github.port)/token?access=QUERY-TOKEN-1#FRAGMENT-1"
        let apiURL = "http://apiuser:apipass-2@127.0.0.1:\(github.port)/api?sig=QUERY-API-2"
        github.set("endpoint-mode", "500")
        let (run, berth) = try start(root, ["GITHUB_API_URL": apiURL, "GH_HOST": "github.com", "GITHUB_TOKEN": "ghp_first",
                                            "GITHUB_TOKEN_URL": tokenURL, "BERTH_TOKEN_REFRESH_INTERVAL": "1"])
        XCTAssertTrue(eventually { github.requests.filter { $0.hasPrefix("GET /token") }.count >= 3 }, "refreshes are failing: \(github.requests)")
        let health = try root.berth(["health"], environment: ["PATH": "/usr/bin:/bin"])
        health.wait()
        XCTAssertTrue(health.outputText.contains("GITHUB_TOKEN_URL: GET http://***@127.0.0.1:\(github.port)/token?*** answered HTTP 500"),
                      "the failure still says which endpoint: \(health.outputText)")
        stop(run, berth)
        let steps = try root.provisionedSteps()
        XCTAssertEqual(steps["github-auth"]?["message"] as? String,
                       "GITHUB_API_URL: GET http://***@127.0.0.1:\(github.port)/api?*** answered HTTP 404")

        var scanned = ["berth's stdout": run.outputText, "berth's stderr": run.errorText, "berth health": health.outputText + health.errorText]
        let runDirectory = root.path + "/run/berth"
        let files = try XCTUnwrap(FileManager.default.subpathsOfDirectory(atPath: runDirectory))
        XCTAssertTrue(files.contains("provision.json") && files.contains("token-refresh.json"), "\(files)")
        for file in files {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: runDirectory + "/" + file, isDirectory: &isDirectory), !isDirectory.boolValue else { continue }
            guard let text = readText(runDirectory + "/" + file) else { return XCTFail("cannot read /run/berth/\(file): the scan would be blind") }
            scanned["/run/berth/" + file] = text
        }
        for (place, text) in scanned {
            for secret in secrets {
                XCTAssertFalse(text.contains(secret), "\(secret) in \(place): \(text)")
            }
        }
        for secret in secrets {
            XCTAssertEqual(try root.files(containing: secret), [], "\(secret) in a file of the root")
        }
    }
}
