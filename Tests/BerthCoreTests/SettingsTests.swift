@testable import BerthCore
import Glibc
import XCTest

final class SettingsTests: XCTestCase {
    func test_secret_comes_from_the_variable_or_its_file() throws {
        let file = "/tmp/berth-secret-\(getpid())"
        defer { unlink(file) }
        FileHelper.write(file, "s3cret\n")
        XCTAssertEqual(try Settings(environment: ["TOKEN": "direct"]).secret("TOKEN")?.text, "direct")
        XCTAssertEqual(try Settings(environment: ["TOKEN_FILE": file]).secret("TOKEN")?.text, "s3cret")
        XCTAssertNil(try Settings(environment: ["TOKEN": ""]).secret("TOKEN"))
    }

    func test_bad_secret_sources_name_the_variable() {
        XCTAssertThrowsError(try Settings(environment: ["TOKEN": "a", "TOKEN_FILE": "/x"]).secret("TOKEN")) {
            XCTAssertEqual("\($0)", "TOKEN and TOKEN_FILE are both set: set one of them")
        }
        XCTAssertThrowsError(try Settings(environment: ["TOKEN_FILE": "/nonexistent/t"]).secret("TOKEN")) {
            XCTAssertEqual("\($0)", "TOKEN_FILE=/nonexistent/t: cannot read: No such file or directory")
        }
        let empty = "/tmp/berth-empty-\(getpid())"
        defer { unlink(empty) }
        FileHelper.write(empty, "\n")
        XCTAssertThrowsError(try Settings(environment: ["TOKEN_FILE": empty]).secret("TOKEN")) {
            XCTAssertEqual("\($0)", "TOKEN_FILE=\(empty): the file is empty")
        }
    }

    func test_a_secret_never_prints_its_value() throws {
        let secret = try XCTUnwrap(Settings(environment: ["KEY": "sk-live-123"]).secret("KEY"))
        XCTAssertEqual("\(secret)", "<redacted>")
        XCTAssertEqual(String(describing: secret), "<redacted>")
        XCTAssertEqual(String(reflecting: secret), "<redacted>")
        XCTAssertFalse("\([secret])".contains("sk-live"))
    }

    func test_booleans_are_strict() {
        XCTAssertEqual(try Settings(environment: ["X": "yes"]).boolean("X", default: false), true)
        XCTAssertEqual(try Settings(environment: [:]).boolean("X", default: true), true)
        XCTAssertThrowsError(try Settings(environment: ["X": "maybe"]).boolean("X", default: false)) {
            XCTAssertEqual("\($0)", "X='maybe': expected 1/0, true/false, yes/no or on/off")
        }
    }
}

final class UserAccountTests: XCTestCase {
    func test_user_home_and_groups_come_from_the_files() throws {
        let passwd = "/tmp/berth-passwd-\(getpid())"
        let group = "/tmp/berth-group-\(getpid())"
        defer { unlink(passwd); unlink(group) }
        FileHelper.write(passwd, "root:x:0:0:root:/root:/bin/bash\ndev8:x:1000:1000:Dev:/home/dev8:/bin/bash\n")
        FileHelper.write(group, "root:x:0:\ndev8:x:1000:\nsudo:x:27:dev8\ndocker:x:999:alice, dev8\nother:x:5:alice\n")
        let user = try UserAccount.lookup("dev8", passwdFile: passwd, groupFile: group)
        XCTAssertEqual(user.uid, 1000)
        XCTAssertEqual(user.gid, 1000)
        XCTAssertEqual(user.home, "/home/dev8")
        XCTAssertEqual(user.shell, "/bin/bash")
        XCTAssertEqual(user.groups, [1000, 27, 999])
        XCTAssertThrowsError(try UserAccount.lookup("nobody8", passwdFile: passwd, groupFile: group)) {
            XCTAssertEqual("\($0)", "BERTH_USER=nobody8: no such user in \(passwd)")
        }
    }
}

enum FileHelper {
    static func write(_ path: String, _ text: String) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        var bytes = Array(text.utf8)
        _ = Glibc.write(fd, &bytes, bytes.count)
        close(fd)
    }
}

final class PlatformCredentialTests: XCTestCase {
    func test_the_names_are_every_case() {
        XCTAssertEqual(PlatformCredential.names, PlatformCredential.allCases.map(\.rawValue))
    }
}
