import BerthCore
import Foundation
import Glibc
import TestSupport
import XCTest

/// Snapshots copied to S3 (moto's server on 127.0.0.1 standing in for AWS,
/// installed by scripts/install-dependencies) and to Azure Blob Storage (a
/// fixture: its emulator needs npm).
final class RemoteCopyTests: XCTestCase {
    /// The Python that has moto: the virtual environment
    /// scripts/install-dependencies makes under the package's .build (Debian's
    /// own Python refuses pip outside one); without it, python3 on the
    /// runner's PATH.
    var python: [String] {
        let root = String(#filePath.dropLast("Tests/WorkspaceSupervisorTests/RemoteCopyTests.swift".count))
        let venv = root + ".build/python-venv/bin/python3"
        return access(venv, X_OK) == 0 ? [venv] : ["/usr/bin/env", "python3"]
    }
    var runnerPath: String { getenv("PATH").map { String(cString: $0) } ?? "/usr/bin:/bin" }

    func script(_ code: String, _ arguments: [String] = []) throws -> Subprocess {
        let run = try Subprocess(python + ["-c", code] + arguments, environment: ["PATH": runnerPath, "HOME": "/tmp"])
        run.wait(timeout: 60)
        return run
    }

    /// moto on a free loopback port. Without moto the test fails, naming
    /// the installer: a skip would leave a green suite whose S3 copies
    /// never ran.
    /// `freeActions`: requests moto takes unsigned before it checks every
    /// signature against its IAM users (nil: it never checks).
    func moto(freeActions: Int? = nil) throws -> (server: Subprocess, url: String) {
        let probe = try script("import moto.server, flask, boto3")
        guard probe.status == .exited(0) else {
            let reason = probe.errorText.split(separator: "\n").last.map(String.init) ?? "\(probe.status)"
            throw TestFailure("moto[server] cannot be imported by \(python.joined(separator: " ")) (run scripts/install-dependencies): \(reason)")
        }
        for _ in 0..<3 {
            let port = Int.random(in: 30_000..<40_000)
            var environment = ["PATH": runnerPath, "HOME": "/tmp"]
            if let freeActions { environment["INITIAL_NO_AUTH_ACTION_COUNT"] = String(freeActions) }
            let server = try Subprocess(python + ["-m", "moto.server", "-H", "127.0.0.1", "-p", String(port)], environment: environment)
            let deadline = now() + 20
            while now() < deadline {
                if (try? http(port, "GET", "/"))?.status == 200 { return (server, "http://127.0.0.1:\(port)") }
                usleep(200_000)
            }
        }
        throw TestFailure("moto did not start")
    }

    static let boto = """
    import boto3, sys
    s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="eu-west-1",
                      aws_access_key_id="AKIATESTBERTH", aws_secret_access_key="not-used-by-moto")

    """

    func test_a_snapshot_is_copied_to_s3_and_azure_and_the_copies_match_the_manifest() throws {
        let (server, url) = try moto()
        defer { server.signal(SIGKILL); server.wait(timeout: 5) }
        let made = try script(Self.boto + "s3.create_bucket(Bucket='ws-backups', CreateBucketConfiguration={'LocationConstraint': 'eu-west-1'})", [url])
        XCTAssertEqual(made.status, .exited(0), made.errorText)

        let signature = "sig\(Int.random(in: 100_000..<999_999))"
        let azure = try FixtureServer(script: "fake_azure_blob.py", arguments: [signature])
        let scratch = Scratch()
        let secret = "aws-secret-\(Int.random(in: 100_000..<999_999))"
        _ = try scratch.sh("""
        mkdir workspace && printf 'code\\n' > workspace/main.swift
        printf '%s' '\(secret)' > aws-secret && printf '%s' 'http://127.0.0.1:\(azure.port)/snapshots?sv=2021-08-06&sr=c&sig=\(signature)' > sas
        """)
        let run = try SupervisorRun([
            "WORKSPACE_DIR": scratch.path + "/workspace", "SUPERVISOR_BACKUP_MOUNT_PATH": scratch.path + "/backups",
            "SUPERVISOR_BACKUP_S3_URL": url + "/ws-backups/team-a/", "SUPERVISOR_BACKUP_S3_REGION": "eu-west-1",
            "AWS_ACCESS_KEY_ID": "AKIATESTBERTH", "AWS_SECRET_ACCESS_KEY_FILE": scratch.path + "/aws-secret",
            "SUPERVISOR_BACKUP_AZURE_SAS_URL_FILE": scratch.path + "/sas",
        ])
        _ = try run.apiReady()
        run.process.signal(SIGUSR1)
        XCTAssertTrue(run.waitFor("(SIGUSR1): ", timeout: 30), run.log)
        XCTAssertTrue(run.log.contains("; s3 ok, azure ok"), run.log)
        let id = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: scratch.path + "/backups").first)
        let local = scratch.path + "/backups/" + id

        // The S3 copies, read back through boto3: same bytes as on disk.
        for name in ["workspace.tar.gz", "manifest.json"] {
            let fetched = try script(Self.boto + "import hashlib; print(hashlib.sha256(s3.get_object(Bucket='ws-backups', Key=sys.argv[2])['Body'].read()).hexdigest())",
                                     [url, "team-a/\(id)/\(name)"])
            XCTAssertEqual(fetched.status, .exited(0), fetched.errorText)
            let expected = try scratch.sh("sha256sum '\(local)/\(name)'").split(separator: " ").first.map(String.init)
            XCTAssertEqual(fetched.outputText.trimmingWhitespace(), expected, name)
            XCTAssertEqual(readFile(azure.state + "/blobs/snapshots/\(id)/\(name)").map { $0.count }, readFile(local + "/" + name).map { $0.count })
            XCTAssertEqual(readFile(azure.state + "/blobs/snapshots/\(id)/\(name)"), readFile(local + "/" + name), name)
        }
        let manifest = try jsonObject(try XCTUnwrap(readText(local + "/manifest.json")))
        XCTAssertEqual(try scratch.sh("sha256sum '\(azure.state)/blobs/snapshots/\(id)/workspace.tar.gz'").split(separator: " ").first.map(String.init),
                       manifest["sha256"] as? String)
        XCTAssertFalse(run.log.contains(secret) || run.log.contains(signature), "no credential in the log: \(run.log)")
        let status = try jsonObject(try http(run.apiPort, "GET", "/status").body)
        let last = ((status["backup"] as? [String: Any])?["last"] as? [String: Any])
        XCTAssertEqual(last?["remote"] as? [String], ["s3 ok", "azure ok"])
        run.process.signal(SIGTERM)
        XCTAssertEqual(run.process.wait(timeout: 5), .exited(0))
    }

    func test_a_failed_copy_is_reported_and_the_local_snapshot_stays() throws {
        let (server, url) = try moto()
        defer { server.signal(SIGKILL); server.wait(timeout: 5) }
        let azure = try FixtureServer(script: "fake_azure_blob.py", arguments: ["right"])
        let scratch = Scratch()
        _ = try scratch.sh("mkdir workspace && printf 'x\\n' > workspace/a && printf '%s' 'http://127.0.0.1:\(azure.port)/c?sig=wrong' > sas")
        let run = try SupervisorRun([
            "WORKSPACE_DIR": scratch.path + "/workspace", "SUPERVISOR_BACKUP_MOUNT_PATH": scratch.path + "/backups",
            "SUPERVISOR_BACKUP_S3_URL": url + "/no-such-bucket", "AWS_ACCESS_KEY_ID": "AKIATESTBERTH", "AWS_SECRET_ACCESS_KEY": "x",
            "SUPERVISOR_BACKUP_AZURE_SAS_URL_FILE": scratch.path + "/sas",
        ])
        _ = try run.apiReady()
        run.process.signal(SIGUSR1)
        XCTAssertTrue(run.waitFor("(SIGUSR1): ", timeout: 30), run.log)
        XCTAssertTrue(run.log.contains("s3 failed: HTTP 404 for "), run.log)
        XCTAssertTrue(run.log.contains("azure failed: HTTP 403 for "), run.log)
        XCTAssertFalse(run.log.contains("sig=wrong"), run.log)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: scratch.path + "/backups").filter { !$0.hasPrefix(".") }.count, 1)
        run.process.signal(SIGTERM)
        XCTAssertEqual(run.process.wait(timeout: 5), .exited(0))
    }

    /// The original images' AZURE_BLOB_* settings: requests signed with the
    /// account key, checked by the fixture as Azure documents it; a wrong
    /// key is refused (403), and the key never reaches the log.
    func test_azure_shared_key_signs_each_put_and_a_wrong_key_is_refused() throws {
        let key = "a2V5LWZvci1iZXJ0aC10ZXN0cy0\(Int.random(in: 100_000..<999_999))"
        let accountKey = String(Data(key.utf8).base64EncodedString())
        for (served, given, expected) in [(accountKey, accountKey, "azure ok"), (accountKey, Data("another key".utf8).base64EncodedString(), "azure failed: HTTP 403 for ")] {
            let azure = try FixtureServer(script: "fake_azure_blob.py", arguments: ["sharedkey:wsaccount:\(served)"])
            let scratch = Scratch()
            _ = try scratch.sh("mkdir workspace && printf 'x\\n' > workspace/a && printf '%s' '\(given)' > azure-key")
            let run = try SupervisorRun([
                "WORKSPACE_DIR": scratch.path + "/workspace", "BACKUP_ENABLED": "true", "SUPERVISOR_BACKUP_MOUNT_PATH": scratch.path + "/backups",
                "AZURE_BLOB_ACCOUNT_NAME": "wsaccount", "AZURE_BLOB_CONTAINER": "snapshots", "AZURE_BLOB_ACCOUNT_KEY_FILE": scratch.path + "/azure-key",
                "SUPERVISOR_BACKUP_AZURE_ENDPOINT": "http://127.0.0.1:\(azure.port)",
            ])
            _ = try run.apiReady()
            run.process.signal(SIGUSR1)
            XCTAssertTrue(run.waitFor("(SIGUSR1): ", timeout: 30), run.log)
            XCTAssertTrue(run.log.contains(expected), run.log)
            XCTAssertFalse(run.log.contains(given), "the key in the log: \(run.log)")
            if expected == "azure ok" {
                let id = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: scratch.path + "/backups").first { !$0.hasPrefix(".") })
                for name in ["workspace.tar.gz", "manifest.json"] {
                    XCTAssertEqual(readFile(azure.state + "/blobs/snapshots/\(id)/\(name)"), readFile(scratch.path + "/backups/\(id)/\(name)"), name)
                }
            }
            run.process.signal(SIGTERM)
            XCTAssertEqual(run.process.wait(timeout: 5), .exited(0))
        }
    }

    func test_s3_requests_carry_a_sigv4_signature_that_s3_verifies() throws {
        // moto checks signatures once its free actions are used: the probe
        // that it is up, an IAM user, its key and its policy. The bucket is
        // made with that key.
        let (server, url) = try moto(freeActions: 4)
        defer { server.signal(SIGKILL); server.wait(timeout: 5) }
        let setup = try script("""
        import boto3, json, sys
        kw = dict(endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id="AKIASETUP", aws_secret_access_key="x")
        iam = boto3.client("iam", **kw)
        iam.create_user(UserName="berth")
        key = iam.create_access_key(UserName="berth")["AccessKey"]
        iam.put_user_policy(UserName="berth", PolicyName="s3", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        kw.update(aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
        boto3.client("s3", **kw).create_bucket(Bucket="signed")
        print(key["AccessKeyId"], key["SecretAccessKey"])
        """, [url])
        XCTAssertEqual(setup.status, .exited(0), setup.errorText)
        let words = setup.outputText.split(separator: " ").map { $0.trimmingWhitespace() }
        guard words.count == 2 else { return XCTFail("no key: \(setup.outputText)") }
        let scratch = Scratch()
        _ = try scratch.sh("mkdir workspace && printf 'x\\n' > workspace/a")
        for (secret, expected) in [(words[1], "; s3 ok"), (words[1] + "x", "; s3 failed: HTTP 403 for ")] {
            let run = try SupervisorRun([
                "WORKSPACE_DIR": scratch.path + "/workspace", "SUPERVISOR_BACKUP_MOUNT_PATH": scratch.path + "/backups",
                "SUPERVISOR_BACKUP_S3_URL": url + "/signed", "AWS_ACCESS_KEY_ID": words[0], "AWS_SECRET_ACCESS_KEY": secret,
            ])
            _ = try run.apiReady()
            run.process.signal(SIGUSR1)
            XCTAssertTrue(run.waitFor("(SIGUSR1): ", timeout: 30), run.log)
            XCTAssertTrue(run.log.contains(expected), "\(expected): \(run.log)")
            run.process.signal(SIGTERM)
            XCTAssertEqual(run.process.wait(timeout: 5), .exited(0))
        }
    }

    func test_s3_settings_are_checked_at_start() throws {
        let base = ["SUPERVISOR_BACKUP_MOUNT_PATH": "/tmp/none"]
        let cases: [([String: String], String)] = [
            (["SUPERVISOR_BACKUP_S3_URL": "s3://bucket"], "SUPERVISOR_BACKUP_S3_URL='s3://bucket': expected ENDPOINT/BUCKET[/PREFIX]"),
            (["SUPERVISOR_BACKUP_S3_URL": "https://s3.example.com/b"], "AWS_ACCESS_KEY_ID is not set: SUPERVISOR_BACKUP_S3_URL needs credentials"),
            (["SUPERVISOR_BACKUP_S3_URL": "https://s3.example.com/b", "AWS_ACCESS_KEY_ID": "A"], "AWS_SECRET_ACCESS_KEY is not set"),
            (["SUPERVISOR_BACKUP_AZURE_SAS_URL": "https://acct.blob.core.windows.net/c"], "SUPERVISOR_BACKUP_AZURE_SAS_URL: expected a container SAS URL"),
        ]
        for (environment, message) in cases {
            let run = try SupervisorRun(base.merging(environment) { $1 })
            XCTAssertEqual(run.process.wait(timeout: 10), .exited(2), run.log)
            XCTAssertTrue(run.log.hasPrefix("workspace-supervisor: " + message), run.log)
        }
    }
}
