import BerthCore
import Foundation
import Glibc
import TestSupport
import XCTest

/// Backups into a remote restic repository: S3 played by moto's server on
/// 127.0.0.1 (installed by scripts/install-dependencies) with its signature
/// checks on, and Azure as far as this machine allows: restic 0.14 reaches
/// Azure only at ACCOUNT.blob.core.windows.net, so its invocation and
/// environment are recorded, not run against Azure.
final class RemoteRepositoryTests: XCTestCase {
    func script(_ code: String, _ arguments: [String] = []) throws -> Subprocess {
        try SignedMoto.script(code, arguments)
    }

    static let boto = """
    import boto3, sys
    s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="eu-west-1",
                      aws_access_key_id="AKIATESTBERTH", aws_secret_access_key="not-used-by-moto")

    """

    func signedMoto(bucket: String) throws -> (server: SignedMoto, url: String, id: String, secret: String) {
        let moto = try SignedMoto(bucket: bucket)
        return (moto, moto.url, moto.keyID, moto.secret)
    }

    /// The daemon with `environment`, after one backup (SIGUSR1) has ended.
    func backedUpOnce(_ environment: [String: String]) throws -> SupervisorRun {
        let run = try SupervisorRun(environment)
        _ = try run.apiReady()
        run.process.signal(SIGUSR1)
        XCTAssertTrue(run.waitFor("(SIGUSR1): ", timeout: 60), run.log)
        return run
    }

    /// The command lines of every process now.
    func commandLines() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry in
            guard Int(entry) != nil else { return nil }
            return readText("/proc/\(entry)/cmdline")
        }
    }

    func test_a_new_container_with_an_empty_volume_restores_the_workspace_from_s3_byte_for_byte() throws {
        let (server, url, id, secret) = try signedMoto(bucket: "ws-backups")
        defer { withExtendedLifetime(server) {} }
        let scratch = Scratch()
        let password = "repository-password-\(Int.random(in: 100_000..<999_999))"
        _ = try scratch.sh("""
        mkdir -p workspace/src restores && chown 65534 restores && chmod 711 .
        printf 'code\\n' > workspace/src/main.swift && chmod 640 workspace/src/main.swift && ln -s src/main.swift workspace/link
        head -c 300000 /dev/urandom > workspace/data.bin
        # Whole seconds: the listings below compare times to the second.
        find workspace -mindepth 1 -exec touch -h -d '2024-05-06 07:08:09' {} + && touch -d '2020-02-02 02:02:02' workspace/data.bin
        printf '%s' '\(secret)' > aws-secret && printf '%s' '\(password)' > password && chmod 400 aws-secret password
        """)
        let environment = [
            "WORKSPACE_DIR": scratch.path + "/workspace", "SUPERVISOR_BACKUP_MOUNT_PATH": scratch.path + "/backups", "BERTH_USER": "nobody",
            "SUPERVISOR_BACKUP_S3_URL": url + "/ws-backups/team-a/", "AWS_ACCESS_KEY_ID": id,
            "AWS_SECRET_ACCESS_KEY_FILE": scratch.path + "/aws-secret", "SUPERVISOR_BACKUP_PASSWORD_FILE": scratch.path + "/password",
        ]
        let run = try SupervisorRun(environment)
        _ = try run.apiReady()
        run.process.signal(SIGUSR1)
        var lines: [String] = []
        XCTAssertTrue(eventually(60) {
            lines += commandLines()
            return run.waitFor("(SIGUSR1): ", timeout: 0.05)
        }, run.log)
        XCTAssertTrue(run.log.contains("; s3 ok"), run.log)
        XCTAssertTrue(lines.contains { $0.hasPrefix("restic\0") || $0.contains("\0restic\0") }, "restic was seen running")
        XCTAssertFalse(lines.contains { $0.contains(secret) || $0.contains(password) }, "a credential in a command line")
        XCTAssertFalse(run.log.contains(secret) || run.log.contains(password), "a credential in the log: \(run.log)")
        let status = try jsonObject(try http(run.apiPort, "GET", "/status").body)
        XCTAssertEqual(((status["backup"] as? [String: Any])?["last"] as? [String: Any])?["remote"] as? [String], ["s3 ok"])
        run.process.signal(SIGTERM)
        XCTAssertEqual(run.process.wait(timeout: 5), .exited(0))

        // The objects are restic's (encrypted): no file's bytes in the clear.
        let keys = try script(Self.boto.replacingOccurrences(of: "not-used-by-moto", with: secret).replacingOccurrences(of: "AKIATESTBERTH", with: id)
                              + "print('\\n'.join(o['Key'] for o in s3.list_objects_v2(Bucket='ws-backups')['Contents']))", [url])
        XCTAssertEqual(keys.status, .exited(0), keys.errorText)
        XCTAssertTrue(keys.outputText.contains("team-a/config") && keys.outputText.contains("team-a/snapshots/"), keys.outputText)

        // A new container: an empty volume, the same settings.
        _ = try scratch.sh("mv backups old-backups")
        let fresh = try SupervisorRun(environment.merging(["SUPERVISOR_BACKUP_MOUNT_PATH": scratch.path + "/new-volume"]) { $1 }, arguments: ["list"])
        XCTAssertEqual(fresh.process.wait(timeout: 5), .exited(1), "no mount yet: \(fresh.log)")
        _ = try scratch.sh("mkdir -m 700 new-volume")
        let list = try SupervisorRun(environment.merging(["SUPERVISOR_BACKUP_MOUNT_PATH": scratch.path + "/new-volume"]) { $1 }, arguments: ["list"])
        XCTAssertEqual(list.process.wait(timeout: 60), .exited(0), list.log)
        XCTAssertTrue(list.process.outputText.contains(" s3\n"), list.process.outputText)
        let restore = try SupervisorRun(environment.merging(["SUPERVISOR_BACKUP_MOUNT_PATH": scratch.path + "/new-volume"]) { $1 },
                                        arguments: ["restore", "latest", scratch.path + "/restores/workspace"])
        XCTAssertEqual(restore.process.wait(timeout: 60), .exited(0), restore.log)
        XCTAssertTrue(restore.process.outputText.contains(" from the s3 repository into "), restore.process.outputText)
        // What is in the directory (the directory itself is restore's target).
        let tree = "find . -mindepth 1 -printf '%P|%y|%m|%l|%Ts|%s\\n' | sort; find . -type f -exec sha256sum {} + | sort"
        XCTAssertEqual(try scratch.sh("cd restores/workspace && " + tree), try scratch.sh("cd workspace && " + tree),
                       "contents, modes, symlinks and times")
        XCTAssertEqual(try scratch.sh("find restores/workspace -not -user 65534 | wc -l"), "0\n")
        XCTAssertFalse(restore.log.contains(secret) || restore.log.contains(password))
    }

    func test_a_wrong_secret_key_fails_the_s3_copy_by_name_and_the_local_snapshot_stays() throws {
        let (server, url, id, secret) = try signedMoto(bucket: "signed")
        defer { withExtendedLifetime(server) {} }
        let scratch = Scratch()
        _ = try scratch.sh("mkdir workspace && printf 'x\\n' > workspace/a")
        let wrong = secret + "x"
        let run = try backedUpOnce([
            "WORKSPACE_DIR": scratch.path + "/workspace", "SUPERVISOR_BACKUP_MOUNT_PATH": scratch.path + "/backups",
            "SUPERVISOR_BACKUP_S3_URL": url + "/signed", "AWS_ACCESS_KEY_ID": id, "AWS_SECRET_ACCESS_KEY": wrong,
            "SUPERVISOR_BACKUP_PASSWORD": "pw",
        ])
        XCTAssertTrue(run.log.contains("; s3 failed: "), run.log)
        XCTAssertFalse(run.log.contains(wrong), run.log)
        let list = try SupervisorRun(["SUPERVISOR_BACKUP_MOUNT_PATH": scratch.path + "/backups", "SUPERVISOR_BACKUP_PASSWORD": "pw"], arguments: ["list"])
        XCTAssertEqual(list.process.wait(timeout: 60), .exited(0), list.log)
        XCTAssertEqual(list.process.outputText.split(separator: "\n").filter { $0.hasSuffix(" local") }.count, 1, list.process.outputText)
        run.process.signal(SIGTERM)
        XCTAssertEqual(run.process.wait(timeout: 5), .exited(0))
    }

    /// restic as the daemon starts it for Azure, recorded by a `restic` first
    /// on PATH that writes down its arguments, environment and standard
    /// input, and fails as a missing repository does.
    func test_azure_gets_restics_own_variables_in_its_environment_and_nothing_in_argv() throws {
        let scratch = Scratch()
        let key = Data("account-key-\(Int.random(in: 100_000..<999_999))".utf8).base64EncodedString()
        _ = try scratch.sh("""
        mkdir workspace bin && printf 'x\\n' > workspace/a && printf '%s' '\(key)' > azure-key
        cat > bin/restic <<'EOF'
        #!/bin/sh
        case " $* " in *" azure:"*) ;; *) exec /usr/bin/restic "$@" ;; esac
        { printf 'argv:'; printf ' %s' "$@"; printf '\\n'; env | grep -E '^(AZURE|AWS|RESTIC)_' | sort; printf 'stdin: '; cat; } >> "$(dirname "$0")/../calls"
        echo 'Fatal: unable to open config file: Stat: The specified container does not exist.' >&2
        echo 'Is there a repository at the following location?' >&2
        exit 1
        EOF
        chmod 755 bin/restic
        """)
        let run = try backedUpOnce([
            "PATH": scratch.path + "/bin:/usr/bin:/bin",
            "WORKSPACE_DIR": scratch.path + "/workspace", "BACKUP_ENABLED": "true", "SUPERVISOR_BACKUP_MOUNT_PATH": scratch.path + "/backups",
            "AZURE_BLOB_ACCOUNT_NAME": "wsaccount", "AZURE_BLOB_CONTAINER": "snapshots", "AZURE_BLOB_ACCOUNT_KEY_FILE": scratch.path + "/azure-key",
            "SUPERVISOR_BACKUP_PASSWORD": "the-password",
        ])
        XCTAssertTrue(run.log.contains("; azure failed: restic init: "), run.log)
        XCTAssertFalse(run.log.contains(key), run.log)
        let calls = try XCTUnwrap(readText(scratch.path + "/calls"))
        let cache = scratch.path + "/backups/.restic-cache"
        XCTAssertEqual(calls, """
        argv: --repo azure:snapshots:/ --cache-dir \(cache) cat config
        AZURE_ACCOUNT_KEY=\(key)
        AZURE_ACCOUNT_NAME=wsaccount
        RESTIC_PASSWORD_FILE=/dev/stdin
        stdin: the-password
        argv: --repo azure:snapshots:/ --cache-dir \(cache) init
        AZURE_ACCOUNT_KEY=\(key)
        AZURE_ACCOUNT_NAME=wsaccount
        RESTIC_PASSWORD_FILE=/dev/stdin
        stdin: the-password

        """)
        run.process.signal(SIGTERM)
        XCTAssertEqual(run.process.wait(timeout: 5), .exited(0))
    }

    func test_s3_settings_are_checked_at_start() throws {
        let base = ["SUPERVISOR_BACKUP_MOUNT_PATH": "/tmp/none"]
        let cases: [([String: String], String)] = [
            (["SUPERVISOR_BACKUP_S3_URL": "s3://bucket"], "SUPERVISOR_BACKUP_S3_URL='s3://bucket': expected ENDPOINT/BUCKET[/PREFIX]"),
            (["SUPERVISOR_BACKUP_S3_URL": "https://s3.example.com/b"], "AWS_ACCESS_KEY_ID is not set: SUPERVISOR_BACKUP_S3_URL needs credentials"),
            (["SUPERVISOR_BACKUP_S3_URL": "https://s3.example.com/b", "AWS_ACCESS_KEY_ID": "A"], "AWS_SECRET_ACCESS_KEY is not set"),
            (["SUPERVISOR_BACKUP_AZURE_SAS_URL": "https://acct.blob.core.windows.net/c"], "SUPERVISOR_BACKUP_AZURE_SAS_URL: expected a container SAS URL"),
            (["SUPERVISOR_BACKUP_S3_URL": "https://key:secret@s3.example.com/b"],
             "SUPERVISOR_BACKUP_S3_URL='https://***@s3.example.com/b': expected ENDPOINT/BUCKET[/PREFIX]"),
            (["SUPERVISOR_BACKUP_S3_URL": "https://s3.example.com/b?X-Amz-Signature=secret"],
             "SUPERVISOR_BACKUP_S3_URL='https://s3.example.com/b?***': expected ENDPOINT/BUCKET[/PREFIX]"),
            (["SUPERVISOR_BACKUP_AZURE_ENDPOINT": "http://127.0.0.1:10000"],
             "SUPERVISOR_BACKUP_AZURE_ENDPOINT='http://127.0.0.1:10000': the backup engine (restic) reaches Azure at ACCOUNT.blob.core.windows.net only; unset it"),
        ]
        for (environment, message) in cases {
            let run = try SupervisorRun(base.merging(environment) { $1 })
            XCTAssertEqual(run.process.wait(timeout: 10), .exited(2), run.log)
            XCTAssertTrue(run.log.hasPrefix("workspace-supervisor: " + message), run.log)
        }
    }
}
