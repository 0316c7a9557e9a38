import Foundation
import Glibc
import TestSupport
import WorkspaceSupervisor
import XCTest

/// Configuration checked at start, and the status API, through the real
/// binary.
final class SettingsAndAPITests: XCTestCase {
    func test_every_bad_setting_stops_the_daemon_naming_the_variable() throws {
        let agent = ["SUPERVISOR_AGENT_ENABLED": "true", "SUPERVISOR_AGENT_BASE_URL": "http://127.0.0.1:1", "ENVIRONMENT_ID": "env-1"]
        let cases: [([String: String], String)] = [
            (["SUPERVISOR_MONITOR_INTERVAL": "30x"], "SUPERVISOR_MONITOR_INTERVAL='30x': expected a duration from 0.001 s to 366 d, like 300s, 5m, 1h30m or 90 (seconds)"),
            (["SUPERVISOR_MONITOR_INTERVAL": "0s"], "SUPERVISOR_MONITOR_INTERVAL='0s': expected a duration from 0.001 s"),
            (["SUPERVISOR_MONITOR_INTERVAL": "5 minutes"], "SUPERVISOR_MONITOR_INTERVAL='5 minutes': expected a duration"),
            (["SUPERVISOR_HTTP_ENABLED": "maybe"], "SUPERVISOR_HTTP_ENABLED='maybe': expected 1/0, true/false, yes/no or on/off"),
            (["SUPERVISOR_HTTP_ADDR": "localhost:9000"], "SUPERVISOR_HTTP_ADDR='localhost' is not an IPv4 address (names are not looked up)"),
            (["SUPERVISOR_HTTP_ADDR": "127.0.0.1"], "SUPERVISOR_HTTP_ADDR='127.0.0.1': expected HOST:PORT, like 127.0.0.1:9000"),
            (["WORKSPACE_DIR": "workspace"], "WORKSPACE_DIR='workspace': expected an absolute path"),
            (["SUPERVISOR_HTTP_TOKEN": "short"], "SUPERVISOR_HTTP_TOKEN: must be one word of 16 or more printable characters"),
            (["SUPERVISOR_HTTP_TOKEN": "a token with spaces in it"], "SUPERVISOR_HTTP_TOKEN: must be one word of 16 or more printable characters"),
            (["SUPERVISOR_SSH_PORT": "99999"], "SUPERVISOR_SSH_PORT='99999': expected a port number from 1 to 65535"),
            (["SUPERVISOR_AGENT_ENABLED": "yes"], "SUPERVISOR_AGENT_BASE_URL is not set: SUPERVISOR_AGENT_ENABLED needs the control plane's URL"),
            (agent.merging(["SUPERVISOR_AGENT_BASE_URL": "ftp://plane"]) { $1 }, "SUPERVISOR_AGENT_BASE_URL='ftp://plane': expected an http:// or https:// URL"),
            (agent.merging(["ENVIRONMENT_ID": ""]) { $1 }, "ENVIRONMENT_ID is not set: SUPERVISOR_AGENT_ENABLED needs it for the report URL"),
            (agent.merging(["ENVIRONMENT_ID": "../x"]) { $1 }, "ENVIRONMENT_ID='../x': letters, digits, '-', '_' and '.' only"),
            (agent.merging(["SUPERVISOR_AGENT_TIMEOUT": "fast"]) { $1 }, "SUPERVISOR_AGENT_TIMEOUT='fast': expected a duration"),
            (agent.merging(["SUPERVISOR_AGENT_API_KEY_FILE": "/nonexistent/key"]) { $1 },
             "SUPERVISOR_AGENT_API_KEY_FILE=/nonexistent/key: cannot read: No such file or directory"),
            (["SUPERVISOR_BACKUP_MOUNT_PATH": "backups"], "SUPERVISOR_BACKUP_MOUNT_PATH='backups': expected an absolute path"),
            (["SUPERVISOR_BACKUP_MOUNT_PATH": "/tmp/b", "SUPERVISOR_BACKUP_KEEP": "0"], "SUPERVISOR_BACKUP_KEEP='0': expected a whole number of snapshots, 1 or more"),
            (["SUPERVISOR_BACKUP_MOUNT_PATH": "/tmp/b", "SUPERVISOR_BACKUP_INTERVAL": "15 s"], "SUPERVISOR_BACKUP_INTERVAL='15 s': expected a duration"),
            (["SUPERVISOR_BACKUP_MOUNT_PATH": "/tmp/b", "SUPERVISOR_BACKUP_SYNC_ON_ACTIVITY": "sometimes"],
             "SUPERVISOR_BACKUP_SYNC_ON_ACTIVITY='sometimes': expected 1/0"),
            (["SUPERVISOR_BACKUP_MOUNT_PATH": "/tmp/b", "SUPERVISOR_BACKUP_MAX_AGE": "week"], "SUPERVISOR_BACKUP_MAX_AGE='week': expected a duration"),
        ]
        for (environment, message) in cases {
            let run = try SupervisorRun(environment)
            XCTAssertEqual(run.process.wait(timeout: 10), .exited(2), "\(environment): \(run.log)")
            XCTAssertTrue(run.log.hasPrefix("workspace-supervisor: " + message), "\(environment): \(run.log)")
        }
    }

    func test_the_original_images_backup_variables_keep_their_meaning() throws {
        let s3 = ["AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "secret", "SUPERVISOR_BACKUP_PASSWORD": "repository password"]
        let bucket = try SupervisorSettings.load(s3.merging(["BACKUP_ENABLED": "true", "AWS_S3_BUCKET": "team-backups", "AWS_REGION": "eu-west-1",
                                                             "SUPERVISOR_BACKUP_INTERVAL": "300s"]) { $1 })
        XCTAssertEqual(bucket.backup?.mountPath, "/backups", "BACKUP_ENABLED=true alone backs up to /backups")
        XCTAssertEqual(bucket.backup?.interval, .seconds(300))
        XCTAssertEqual(bucket.backup?.remote?.location, "s3:https://s3.eu-west-1.amazonaws.com/team-backups", "restic's name for the bucket")
        XCTAssertEqual(bucket.backup?.remote?.credentials, ["AWS_ACCESS_KEY_ID=AKID", "AWS_SECRET_ACCESS_KEY=secret", "AWS_DEFAULT_REGION=eu-west-1"])
        XCTAssertEqual(bucket.backup?.password?.text, "repository password")
        let azure = try SupervisorSettings.load(["BACKUP_ENABLED": "true", "AZURE_BLOB_ACCOUNT_NAME": "acct", "AZURE_BLOB_ACCOUNT_KEY": "a2V5",
                                                 "AZURE_BLOB_CONTAINER": "ws-backups", "SUPERVISOR_BACKUP_PASSWORD": "pw"])
        XCTAssertEqual(azure.backup?.remote?.location, "azure:ws-backups:/")
        XCTAssertEqual(azure.backup?.remote?.credentials, ["AZURE_ACCOUNT_NAME=acct", "AZURE_ACCOUNT_KEY=a2V5"], "restic's own variables")
        let sas = try SupervisorSettings.load(["SUPERVISOR_BACKUP_MOUNT_PATH": "/tmp/b", "SUPERVISOR_BACKUP_PASSWORD": "pw",
                                               "SUPERVISOR_BACKUP_AZURE_SAS_URL": "https://acct.blob.core.windows.net/ws-backups?sv=2022-11-02&sig=c2ln"])
        XCTAssertEqual(sas.backup?.remote?.location, "azure:ws-backups:/")
        XCTAssertEqual(sas.backup?.remote?.credentials, ["AZURE_ACCOUNT_NAME=acct", "AZURE_ACCOUNT_SAS=sv=2022-11-02&sig=c2ln"])
        let off = try SupervisorSettings.load(["BACKUP_ENABLED": "false", "SUPERVISOR_BACKUP_MOUNT_PATH": "/tmp/b"])
        XCTAssertNil(off.backup, "BACKUP_ENABLED=false wins over a mount path")
        let plain = try SupervisorSettings.load(["SUPERVISOR_BACKUP_MOUNT_PATH": "/tmp/b"])
        XCTAssertEqual(plain.backup?.mountPath, "/tmp/b")
        for (environment, message) in [
            (s3.merging(["BACKUP_ENABLED": "true", "AWS_S3_BUCKET": "b", "SUPERVISOR_BACKUP_S3_URL": "https://s3.example/b"]) { $1 },
             "SUPERVISOR_BACKUP_S3_URL and AWS_S3_BUCKET are both set: set one of them"),
            (s3.merging(["BACKUP_ENABLED": "true", "AWS_S3_BUCKET": "Not_A_Bucket"]) { $1 },
             "AWS_S3_BUCKET='Not_A_Bucket': expected an S3 bucket name (3 to 63 of a-z, 0-9, '-' and '.')"),
            (["BACKUP_ENABLED": "true", "AWS_S3_BUCKET": "team-backups"], "AWS_ACCESS_KEY_ID is not set: AWS_S3_BUCKET needs credentials"),
            (["BACKUP_ENABLED": "maybe"], "BACKUP_ENABLED='maybe': expected 1/0, true/false, yes/no or on/off"),
            (["BACKUP_ENABLED": "true", "AWS_S3_BUCKET": "team-backups", "AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "secret"],
             "SUPERVISOR_BACKUP_PASSWORD is not set: the repository AWS_S3_BUCKET names is encrypted with it, and it must not live beside the copy (set it, or SUPERVISOR_BACKUP_PASSWORD_FILE)"),
            (s3.merging(["BACKUP_ENABLED": "true", "AWS_S3_BUCKET": "team-backups", "AZURE_BLOB_ACCOUNT_NAME": "acct", "AZURE_BLOB_ACCOUNT_KEY": "a2V5",
                         "AZURE_BLOB_CONTAINER": "ws-backups"]) { $1 },
             "AWS_S3_BUCKET and AZURE_BLOB_ACCOUNT_NAME are both set: backups go to one remote repository; set one"),
(["BACKUP_ENABLED": "true", "AZURE_BLOB_ACCOUNT_NAME": "acct"],
             "AZURE_BLOB_ACCOUNT_KEY, AZURE_BLOB_CONTAINER not set: Azure needs all of AZURE_BLOB_ACCOUNT_NAME, AZURE_BLOB_ACCOUNT_KEY, AZURE_BLOB_CONTAINER"),
            (["BACKUP_ENABLED": "true", "AZURE_BLOB_ACCOUNT_NAME": "acct", "AZURE_BLOB_ACCOUNT_KEY": "not base64!", "AZURE_BLOB_CONTAINER": "c0ntainer"],
             "AZURE_BLOB_ACCOUNT_KEY: expected the account key as Azure shows it (base64)"),
            (["BACKUP_ENABLED": "true", "AZURE_BLOB_ACCOUNT_NAME": "Bad_Name", "AZURE_BLOB_ACCOUNT_KEY": "a2V5", "AZURE_BLOB_CONTAINER": "c0ntainer"],
             "AZURE_BLOB_ACCOUNT_NAME='Bad_Name': expected a storage account name (3 to 24 of a-z and 0-9)"),
        ] {
            XCTAssertThrowsError(try SupervisorSettings.load(environment), "\(environment)") { error in
                XCTAssertEqual("\(error)", message)
            }
        }
    }

    func test_the_api_answers_health_status_and_metrics_and_refuses_the_rest() throws {
        let run = try SupervisorRun(["WORKSPACE_DIR": "/tmp"])
        let port = try run.apiReady()

        let health = try http(port, "GET", "/health")
        XCTAssertEqual(health.status, 200)
        XCTAssertEqual(try jsonObject(health.body)["status"] as? String, "ok")
        XCTAssertTrue(health.headers.contains("Content-Type: application/json"), health.headers)

        let status = try jsonObject(try http(port, "GET", "/status").body)
        XCTAssertNotNil(status["startedAt"] as? String)
        XCTAssertNotNil(status["uptimeSeconds"] as? Int)
        XCTAssertEqual(status["workspace"] as? String, "/tmp")
        let activity = try XCTUnwrap(status["activity"] as? [String: Any])
        XCTAssertEqual(activity["activeIDEConnections"] as? Int, 0)
        XCTAssertTrue(activity["lastSSHActivity"] is NSNull)
        XCTAssertTrue(status["backup"] is NSNull, "backups off without a mount path")

        let metrics = try http(port, "GET", "/metrics")
        XCTAssertEqual(metrics.status, 200)
        XCTAssertTrue(metrics.headers.contains("text/plain; version=0.0.4"), metrics.headers)
        XCTAssertTrue(metrics.body.contains("# TYPE workspace_supervisor_uptime_seconds gauge\n"))
        XCTAssertTrue(metrics.body.contains("workspace_supervisor_active_connections{kind=\"ssh\"} 0\n"))
        // Every sample line: name{labels} value, in the exposition format.
        let sample = try NSRegularExpression(pattern: "^[a-z_]+(\\{[a-z]+=\"[a-z]+\"\\})? [0-9.e+-]+$")
        for line in metrics.body.split(separator: "\n") where !line.hasPrefix("#") {
            XCTAssertEqual(sample.numberOfMatches(in: String(line), range: NSRange(location: 0, length: line.utf16.count)), 1, String(line))
        }

        XCTAssertEqual(try http(port, "POST", "/backup").status, 503)
        XCTAssertEqual(try http(port, "DELETE", "/status").status, 405)
        XCTAssertEqual(try http(port, "GET", "/nope").status, 404)
        XCTAssertEqual(try http(port, "GET", "/", raw: "NONSENSE\r\n\r\n").status, 400)
        XCTAssertEqual(try http(port, "GET", "/", raw: "GET /health HTTP/1.1\r\nX: " + String(repeating: "a", count: 20_000) + "\r\n\r\n").status, 431)

        run.process.signal(SIGTERM)
        XCTAssertEqual(run.process.wait(timeout: 5), .exited(0), run.log)
    }

    func test_the_api_off_loopback_without_a_token_refuses_to_start() throws {
        for address in ["0.0.0.0:0", ":0", "[::]:0"] {
            let run = try SupervisorRun(["WORKSPACE_DIR": "/tmp", "SUPERVISOR_HTTP_ADDR": address])
            XCTAssertEqual(run.process.wait(timeout: 10), .exited(2), run.log)
            XCTAssertEqual(run.log.split(separator: "\n").count, 1, run.log)
            XCTAssertTrue(run.log.contains("SUPERVISOR_HTTP_ADDR=\(address) is not a loopback address: set SUPERVISOR_HTTP_TOKEN"), run.log)
        }
    }

    func request(_ port: Int, _ method: String, _ path: String, token: String?) throws -> Int {
        let authorization = token.map { "Authorization: Bearer \($0)\r\n" } ?? ""
        return try http(port, method, path, raw: "\(method) \(path) HTTP/1.1\r\nHost: x\r\n\(authorization)Content-Length: 0\r\n\r\n").status
    }

    func test_with_a_token_every_request_without_it_is_refused_loopback_included() throws {
        let token = "tok-\(Int.random(in: 100_000_000..<999_999_999))-abcdefgh"
        let scratch = Scratch()
        _ = try scratch.sh("mkdir workspace && printf '%s\\n' '\(token)' > token && chmod 400 token")
        let run = try SupervisorRun(["WORKSPACE_DIR": scratch.path + "/workspace", "SUPERVISOR_HTTP_ADDR": "0.0.0.0:0",
                                     "SUPERVISOR_HTTP_TOKEN_FILE": scratch.path + "/token", "SUPERVISOR_BACKUP_MOUNT_PATH": scratch.path + "/backups"])
        let port = try run.apiReady()
        for path in ["/health", "/status", "/metrics"] {
            XCTAssertEqual(try request(port, "GET", path, token: nil), 401, path)
            XCTAssertEqual(try request(port, "GET", path, token: String(token.dropLast()) + "x"), 401, "same length, one byte off: \(path)")
            XCTAssertEqual(try request(port, "GET", path, token: String(token.dropLast())), 401, "a prefix: \(path)")
            XCTAssertEqual(try request(port, "GET", path, token: token + "x"), 401, "longer: \(path)")
            XCTAssertEqual(try request(port, "GET", path, token: token), 200, path)
        }
        XCTAssertEqual(try request(port, "POST", "/backup", token: nil), 401)
        XCTAssertEqual(try request(port, "POST", "/backup", token: "wrong"), 401)
        usleep(300_000)
        XCTAssertFalse(run.log.contains("backup "), "no backup started without the token: \(run.log)")
        XCTAssertEqual(try request(port, "POST", "/backup", token: token), 202)
        XCTAssertFalse(run.log.contains(token), run.log)
        run.process.signal(SIGTERM)
        XCTAssertEqual(run.process.wait(timeout: 10), .exited(0), run.log)
    }

    /// A connected socket to the API, or nil.
    func connectSocket(_ port: Int) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard connected == 0 else { close(fd); return nil }
        return fd
    }

    func test_one_client_holding_every_slot_with_trickled_bytes_does_not_lock_out_health() throws {
        let run = try SupervisorRun(["WORKSPACE_DIR": "/tmp"])
        let port = try run.apiReady()
        // More than the server's 64 slots, each kept alive by a byte of
        // an endless header every 100 ms, well inside its 5 s limit.
        var attackers = (0..<80).compactMap { _ in connectSocket(port) }
        defer { attackers.forEach { close($0) } }
        XCTAssertEqual(attackers.count, 80)
        func trickle(_ text: String) {
            for fd in attackers { _ = text.withCString { send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) } }
        }
        trickle("GET /health HTTP/1.1\r\n")
        var answered = 0
        for round in 0..<10 {
            trickle("X-Slow-\(round): a\r\n")
            usleep(100_000)
            if round >= 2 {
                let started = now()
                let health = try http(port, "GET", "/health")
                XCTAssertEqual(health.status, 200)
                XCTAssertLessThan(now() - started, 1.0, "answered at once, not after a slot timed out")
                answered += 1
            }
        }
        XCTAssertEqual(answered, 8)
        attackers.forEach { close($0) }
        attackers = []
        run.process.signal(SIGTERM)
        XCTAssertEqual(run.process.wait(timeout: 5), .exited(0), run.log)
    }

    func test_a_head_whose_blank_line_is_split_across_reads_is_still_found() throws {
        let run = try SupervisorRun(["WORKSPACE_DIR": "/tmp"])
        let port = try run.apiReady()
        let fd = try XCTUnwrap(connectSocket(port))
        defer { close(fd) }
        for piece in ["GET /health HTTP/1.1\r\nHost: x\r", "\n\r", "\n"] {
            _ = piece.withCString { send(fd, $0, strlen($0), 0) }
            usleep(50_000)
        }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(fd, &buffer, buffer.count, 0)
        XCTAssertTrue(String(decoding: buffer[0..<max(0, count)], as: UTF8.self).hasPrefix("HTTP/1.1 200 OK"))
        run.process.signal(SIGTERM)
        XCTAssertEqual(run.process.wait(timeout: 5), .exited(0), run.log)
    }

    func test_proc_net_tcp_lines_count_only_established_connections_on_the_ports() {
        let table = """
          sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
           0: 00000000:08AE 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
           1: 0100007F:08AE 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 2 1 0000000000000000 20 4 30 10 -1
           2: 0100007F:D431 0100007F:08AE 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 20 4 30 10 -1
           3: 0100007F:1F90 0100007F:C000 06 00000000:00000000 03:00000000 00000000     0        0 0 3 0000000000000000
        """
        XCTAssertEqual(TCPTable.established(onLocalPorts: [2222, 8080], in: table), [2222: 1])
        let six = """
          sl  local_address                         remote_address                        st
           0: 0000000000000000FFFF00000100007F:1F90 0000000000000000FFFF00000100007F:9C40 01 00000000:00000000
        """
        XCTAssertEqual(TCPTable.established(onLocalPorts: [8080], in: six), [8080: 1])
    }

    func test_ssh_session_process_titles() {
        XCTAssertTrue(SSHSessions.isSession("sshd: dev8@pts/0"))
        XCTAssertTrue(SSHSessions.isSession("sshd: dev8@notty"))
        XCTAssertTrue(SSHSessions.isSession("sshd-session: dev8@pts/1"))
        XCTAssertFalse(SSHSessions.isSession("sshd: dev8 [priv]"))
        XCTAssertFalse(SSHSessions.isSession("sshd: /usr/sbin/sshd -D -e -p 2222 [listener] 0 of 10-100 startups"))
        XCTAssertFalse(SSHSessions.isSession("/usr/sbin/sshd -D -e"))
    }
}
