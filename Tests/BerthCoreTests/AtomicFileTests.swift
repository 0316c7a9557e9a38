@testable import BerthCore
import Glibc
import TestSupport
import XCTest

final class AtomicFileTests: XCTestCase {
    var directory = ""

    override func setUpWithError() throws {
        directory = "/tmp/berth-atomic-\(getpid())-\(Int.random(in: 0..<1_000_000))"
        XCTAssertEqual(mkdir(directory, 0o755), 0)
    }

    override func tearDown() {
        _ = system("rm -rf '\(directory)'")
    }

    func test_writes_content_owner_and_mode_and_leaves_no_temporary() throws {
        let path = directory + "/authorized_keys"
        let outcome = try AtomicFile.write(Array("key\n".utf8), to: path, mode: 0o600, owner: .init(uid: 65534, gid: 65534))
        XCTAssertEqual(outcome, .written)
        var info = stat()
        XCTAssertEqual(stat(path, &info), 0)
        XCTAssertEqual(info.st_mode & 0o7777, 0o600)
        XCTAssertEqual(info.st_uid, 65534)
        XCTAssertEqual(info.st_gid, 65534)
        XCTAssertEqual(TestSupport.readText(path), "key\n")
        XCTAssertEqual(entries(), ["authorized_keys"])
    }

    func test_same_content_owner_and_mode_is_left_untouched() throws {
        let path = directory + "/config"
        XCTAssertEqual(try AtomicFile.write(Array("a".utf8), to: path, mode: 0o644), .written)
        var before = stat()
        stat(path, &before)
        XCTAssertEqual(try AtomicFile.write(Array("a".utf8), to: path, mode: 0o644), .unchanged)
        var after = stat()
        stat(path, &after)
        XCTAssertEqual(before.st_ino, after.st_ino)
        XCTAssertEqual(try AtomicFile.write(Array("a".utf8), to: path, mode: 0o600), .written, "a new mode is a change")
        XCTAssertEqual(try AtomicFile.write(Array("b".utf8), to: path, mode: 0o600), .written, "new content is a change")
    }

    func test_a_symlinked_directory_is_refused() throws {
        XCTAssertEqual(symlink("/etc", directory + "/ssh"), 0)
        XCTAssertThrowsError(try AtomicFile.write(Array("x".utf8), to: directory + "/ssh/planted", mode: 0o600)) { error in
            XCTAssertTrue("\(error)".contains("/ssh: open directory without following a symlink failed"), "\(error)")
        }
        XCTAssertNotEqual(access("/etc/planted", F_OK), 0)
    }

    func test_a_symlink_at_the_target_is_replaced_not_followed() throws {
        let victim = directory + "/victim"
        XCTAssertEqual(try AtomicFile.write(Array("precious".utf8), to: victim, mode: 0o600), .written)
        XCTAssertEqual(symlink(victim, directory + "/link"), 0)
        try AtomicFile.write(Array("new".utf8), to: directory + "/link", mode: 0o600)
        XCTAssertEqual(TestSupport.readText(victim), "precious")
        XCTAssertEqual(TestSupport.readText(directory + "/link"), "new")
    }

    func test_sigkill_at_any_moment_leaves_the_old_or_the_new_file_whole() throws {
        let path = directory + "/state"
        for attempt in 0..<20 {
            let writer = try Subprocess([Built.coreProbe, "atomic-writer", path])
            XCTAssertEqual(writer.readLine(), "ready")
            usleep(UInt32(1000 + (attempt * 7919) % 30000))
            writer.signal(SIGKILL)
            writer.wait()
            guard let text = TestSupport.readText(path) else { return XCTFail("the file vanished") }
            let wholeA = text.count == 256 << 10 && text.allSatisfy { $0 == "a" }
            let wholeB = text.count == 512 << 10 && text.allSatisfy { $0 == "b" }
            XCTAssertTrue(wholeA || wholeB, "attempt \(attempt): \(text.count) bytes, neither version whole")
        }
        // Leftover temporaries of killed writes are cleared by the next write.
        try AtomicFile.write(Array("final".utf8), to: path, mode: 0o640)
        XCTAssertEqual(entries(), ["state"])
    }

    func test_directories_are_created_with_owner_and_mode() throws {
        let path = directory + "/.ssh"
        try AtomicFile.ensureDirectory(path, mode: 0o700, owner: .init(uid: 1000, gid: 1000))
        var info = stat()
        XCTAssertEqual(stat(path, &info), 0)
        XCTAssertEqual(info.st_mode & 0o7777, 0o700)
        XCTAssertEqual(info.st_uid, 1000)
        chmod(path, 0o777)
        try AtomicFile.ensureDirectory(path, mode: 0o700, owner: .init(uid: 1000, gid: 1000))
        stat(path, &info)
        XCTAssertEqual(info.st_mode & 0o7777, 0o700, "an existing directory is brought back to its mode")
    }

    private func entries() -> [String] {
        guard let dir = opendir(directory) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }
}
