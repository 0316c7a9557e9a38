@testable import BerthCore
import Glibc
import TestSupport
import XCTest

/// The one way provisioning touches a directory: opened from `/` one
/// component at a time without following symlinks, then used only through
/// its descriptor.
final class DirectoryHandleTests: XCTestCase {
    var base = ""
    /// Where a planted symlink points: nothing may ever appear in it.
    var outside = ""

    override func setUpWithError() throws {
        base = "/tmp/berth-handle-\(getpid())-\(Int.random(in: 0..<1_000_000))"
        outside = base + "-outside"
        XCTAssertEqual(mkdir(base, 0o755), 0)
        XCTAssertEqual(mkdir(outside, 0o755), 0)
    }

    override func tearDown() {
        _ = system("rm -rf '\(base)' '\(outside)'")
    }

    func test_a_symlink_at_any_component_of_the_path_is_refused_and_nothing_is_made_outside() throws {
        let components = ["home", "dev8", ".config", "gh"]
        for swapped in components.indices {
            _ = system("rm -rf '\(base)/home'")
            // The real tree up to the swapped component, a symlink to
            // `outside` there, and the rest of the tree inside `outside`, so
            // that following the link would succeed.
            var real = base
            for component in components[..<swapped] {
                real += "/" + component
                XCTAssertEqual(mkdir(real, 0o755), 0)
            }
            XCTAssertEqual(symlink(outside, real + "/" + components[swapped]), 0)
            var beyond = outside
            for component in components[(swapped + 1)...] {
                beyond += "/" + component
                mkdir(beyond, 0o755)
            }
            let before = try listing(outside)
            let full = base + "/" + components.joined(separator: "/")
            XCTAssertThrowsError(try DirectoryHandle.open(full), "a symlink at \(components[swapped])") { error in
                XCTAssertTrue("\(error)".contains("without following a symlink"), "\(error)")
            }
            XCTAssertThrowsError(try AtomicFile.write(Array("planted".utf8), to: full + "/hosts.yml", mode: 0o600, owner: .init(uid: 1000, gid: 1000)))
            XCTAssertThrowsError(try AtomicFile.ensureDirectory(full + "/made", mode: 0o700, owner: .init(uid: 1000, gid: 1000)))
            // From a handle above the link, making the directories below it.
            let above = try DirectoryHandle.open(base)
            XCTAssertThrowsError(try above.directory(components.joined(separator: "/") + "/made", mode: 0o700, owner: .init(uid: 1000, gid: 1000)))
            XCTAssertThrowsError(try above.existingDirectory(components.joined(separator: "/")))
            XCTAssertEqual(try listing(outside), before, "nothing created, chowned or written outside with a symlink at \(components[swapped])")
            _ = system("rm -rf '\(outside)' && mkdir '\(outside)'")
        }
    }

    func test_a_directory_swapped_for_a_symlink_after_it_was_opened_keeps_receiving_the_write() throws {
        XCTAssertEqual(mkdir(base + "/.config", 0o755), 0)
        let config = try DirectoryHandle.open(base + "/.config")
        // The user moves the real directory away and plants a link to
        // `outside` where it was: the held descriptor still names the moved
        // directory, so the write lands there.
        XCTAssertEqual(rename(base + "/.config", base + "/moved"), 0)
        XCTAssertEqual(symlink(outside, base + "/.config"), 0)
        let before = try listing(outside)
        let gh = try config.directory("gh", mode: 0o700, owner: .init(uid: 1000, gid: 1000))
        try gh.write(Array("token".utf8), to: "hosts.yml", mode: 0o600, owner: .init(uid: 1000, gid: 1000))
        XCTAssertEqual(readText(base + "/moved/gh/hosts.yml"), "token")
        XCTAssertEqual(try listing(outside), before, "nothing reached the symlink's target")
        var info = stat()
        XCTAssertEqual(lstat(base + "/moved/gh", &info), 0)
        XCTAssertEqual(info.st_uid, 1000)
        XCTAssertEqual(info.st_mode & 0o7777, 0o700)
    }

    func test_a_symlink_where_a_directory_should_be_made_is_refused_not_chowned() throws {
        let home = try DirectoryHandle.open(base)
        XCTAssertEqual(symlink(outside, base + "/.ssh"), 0)
        XCTAssertThrowsError(try home.directory(".ssh", mode: 0o700, owner: .init(uid: 1000, gid: 1000))) { error in
            XCTAssertTrue("\(error)".contains("\(base)/.ssh: open directory without following a symlink failed"), "\(error)")
        }
        var info = stat()
        XCTAssertEqual(stat(outside, &info), 0)
        XCTAssertEqual(info.st_uid, 0, "the symlink's target was not chowned")
        XCTAssertEqual(info.st_mode & 0o7777, 0o755, "nor chmod'ed")
    }

    func test_reads_take_only_plain_files_of_trusted_owners_and_a_fifo_never_blocks() throws {
        let home = try DirectoryHandle.open(base)
        XCTAssertEqual(writeFile(outside + "/secret", "shadow"), true)
        XCTAssertEqual(symlink(outside + "/secret", base + "/.gitconfig"), 0)
        XCTAssertNil(home.readText(".gitconfig", owners: [1000, 0]), "a symlink is not followed")
        XCTAssertEqual(link(outside + "/secret", base + "/.bashrc"), 0)
        XCTAssertNil(home.readText(".bashrc", owners: [1000, 0]), "a second hard link is not copied")
        XCTAssertEqual(mkfifo(base + "/.profile", 0o644), 0)
        let started = now()
        XCTAssertNil(home.readText(".profile", owners: [1000, 0]), "a FIFO is not a file")
        XCTAssertLessThan(now() - started, 1, "opening a planted FIFO must not wait for a writer")
        XCTAssertEqual(writeFile(base + "/other", "someone else's"), true)
        XCTAssertEqual(chown(base + "/other", 4242, 4242), 0)
        XCTAssertNil(home.readText("other", owners: [1000, 0]))
        XCTAssertEqual(home.readText("other"), "someone else's", "without owners any plain file is read")
        XCTAssertEqual(writeFile(base + "/big", String(repeating: "x", count: 100)), true)
        XCTAssertNil(home.read("big", limit: 99), "past the size limit")
    }

    func test_remove_and_names_that_would_leave_the_directory() throws {
        let home = try DirectoryHandle.open(base)
        XCTAssertEqual(writeFile(outside + "/victim", "keep"), true)
        XCTAssertEqual(symlink(outside + "/victim", base + "/ai-cli.env"), 0)
        try home.remove("ai-cli.env")
        XCTAssertEqual(readText(outside + "/victim"), "keep", "the link went, not its target")
        try home.remove("ai-cli.env")
        for name in ["..", "../x", ".", "", "a/b"] {
            XCTAssertThrowsError(try home.write(Array("x".utf8), to: name, mode: 0o600), "'\(name)'")
        }
        XCTAssertThrowsError(try home.directory("../escape", mode: 0o700))
        XCTAssertThrowsError(try DirectoryHandle.open(base + "/../tmp"))
        XCTAssertThrowsError(try DirectoryHandle.open("relative/path"))
    }

    func test_control_characters_in_a_config_value_are_refused_naming_the_source_not_the_value() throws {
        for (value, what) in [("Eve\n[core]\n\tsshCommand = touch /pwned", "a newline"), ("a\rb", "a carriage return"), ("a\tb", "a tab"),
                              ("a\u{7f}b", "a control character"), ("a\u{0}b", "a control character"), ("a\u{1b}[2Jb", "a control character")] {
            XCTAssertThrowsError(try configValue(value, from: "GIT_USER_NAME")) { error in
                let message = "\(error)"
                XCTAssertTrue(message.hasPrefix("GIT_USER_NAME: contains \(what)"), message)
                XCTAssertFalse(message.contains("Eve") || message.contains("a\u{1b}"), "the value is not echoed: \(message)")
            }
        }
        XCTAssertEqual(try configValue("Zoë O'Brien \"Z\" <z@example.com> ☃", from: "GIT_USER_NAME"), "Zoë O'Brien \"Z\" <z@example.com> ☃")
    }

    /// Name, type, owner, mode, size and mtime of everything in `directory`
    /// (itself included: an entry made and removed changes its mtime).
    /// Throws when find could not list it: two failed listings would compare equal.
    private func listing(_ directory: String) throws -> [String] {
        let run = try Subprocess(["find", directory, "-printf", "%P %y %U:%G %m %s %T@\n"], environment: ["PATH": "/usr/bin:/bin"])
        let status = run.wait()
        guard status == .exited(0), !run.output.isEmpty else { throw TestFailure("find \(directory) did not list it: \(status), \(run.errorText)") }
        return run.outputText.split(separator: "\n").map(String.init).sorted()
    }

    private func writeFile(_ path: String, _ text: String) -> Bool {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return text.utf8.withContiguousStorageIfAvailable { Glibc.write(fd, $0.baseAddress, $0.count) } == text.utf8.count
    }
}
