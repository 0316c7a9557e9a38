import Glibc

/// A minimal root file system for provisioning tests: glibc, berth, the test
/// kit, /etc/passwd with the workspace user dev8 (1000:1000) and its home.
/// Provisioning runs chrooted in it, never against this machine's /etc or
/// /home.
public final class ThrowawayRoot {
    public let path: String

    /// `withSSH`: also Debian's sshd and ssh-keygen, the sshd privilege
    /// separation user and directory, and a main
    /// sshd_config that includes sshd_config.d (without PAM, which the root
    /// has no configuration for).
    /// `tools`: more binaries or libraries (gh, git, libcurl), each placed
    /// at its own path with whatever it loads.
    public init(withSSH: Bool = false, tools: [String] = []) throws {
        path = "/tmp/berth-root-\(getpid())-\(Int.random(in: 0..<1_000_000))"
        for directory in ["", "/etc", "/home", "/home/dev8", "/run", "/proc", "/tmp", "/secrets", "/dev"] {
            guard mkdir(path + directory, 0o755) == 0 else { throw TestFailure("mkdir \(path + directory)") }
        }
        for (device, major, minor) in [("null", 1, 3), ("zero", 1, 5), ("random", 1, 8), ("urandom", 1, 9)] {
            guard mknod(path + "/dev/" + device, S_IFCHR | 0o666, dev_t((major << 8) | minor)) == 0 else {
                throw TestFailure("mknod \(device)")
            }
            chmod(path + "/dev/" + device, 0o666)
        }
        chmod(path + "/tmp", 0o1777)
        chown(path + "/home/dev8", 1000, 1000)
        // Whatever the binaries load (glibc; a debug berth also Swift's
        // shared runtime), at the same paths.
        let ssh = withSSH ? ["/usr/sbin/sshd", "/usr/bin/ssh-keygen"] : []
        for binary in [Built.berth, Built.testkit, "/bin/sh"] + ssh + tools {
            let listing = try Subprocess(["ldd", binary])
            listing.wait()
            for line in listing.outputText.split(separator: "\n") {
                guard let library = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).first(where: { $0.hasPrefix("/") }) else { continue }
                try link(String(library))
            }
        }
        try copy(Built.berth, to: path + "/berth")
        try copy(Built.testkit, to: path + "/testkit")
        try link("/bin/sh")
        for tool in tools { try link(tool) }
        if withSSH {
            for binary in ssh { try link(binary) }
            for directory in ["/etc/ssh", "/etc/ssh/sshd_config.d", "/run/sshd", "/root"] {
                guard mkdir(path + directory, 0o755) == 0 else { throw TestFailure("mkdir \(directory)") }
            }
            try write("/etc/ssh/sshd_config", "Include /etc/ssh/sshd_config.d/*.conf\nUsePAM no\nSubsystem sftp internal-sftp\n")
        }
        try write("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\ndev8:x:1000:1000:dev8:/home/dev8:/bin/sh\nsshd:x:102:65534::/run/sshd:/usr/sbin/nologin\n"
                  + "berth-supervisor:x:999:999::/nonexistent:/usr/sbin/nologin\n")
        try write("/etc/group", "root:x:0:\ndev8:x:1000:\nberth-supervisor:x:999:\n")
    }

    deinit {
        _ = system("rm -rf '\(path)'")
    }

    /// berth as PID 1 of a new PID namespace, chrooted here.
    /// `user`: run berth as that uid:gid (a container started with --user).
    /// `oneStream`: berth's stderr goes to its stdout, one pipe whose line
    /// order is the order of the writes (berth's log, services, command).
    public func berth(_ arguments: [String], environment: [String: String], user: String? = nil, oneStream: Bool = false) throws -> Subprocess {
        let chroot = ["/usr/sbin/chroot"] + (user.map { ["--userspec=\($0)"] } ?? []) + [path, "/berth"]
        let merge = oneStream ? ["/bin/sh", "-c", "exec \"$@\" 2>&1", "sh"] : []
        return try Subprocess(merge + ["unshare", "--pid", "--fork", "--mount-proc=\(path)/proc"] + chroot + arguments, environment: environment)
    }

    /// `arguments` run inside the root as the workspace user, with a login
    /// session's bare environment (no token variables): what an SSH session
    /// or a code-server terminal sees.
    public func asUser(_ arguments: [String], input: String? = nil) throws -> Subprocess {
        var inputFD: Int32 = -1
        if let input {
            let file = path + "/tmp/.input-\(Int.random(in: 0..<1_000_000))"
            try write(String(file.dropFirst(path.count)), input, mode: 0o600)
            inputFD = open(file, O_RDONLY | O_CLOEXEC)
            unlink(file)
        }
        defer { if inputFD >= 0 { close(inputFD) } }
        let run = try Subprocess(["/usr/sbin/chroot", "--userspec=1000:1000", path, "/usr/bin/env", "-i", "HOME=/home/dev8", "USER=dev8",
                                  "PATH=/usr/bin:/bin"] + arguments, environment: ["PATH": "/usr/sbin:/usr/bin:/bin"], input: inputFD)
        run.wait(timeout: 30)
        return run
    }

    /// Every regular file under the root whose bytes contain `needle`
    /// (paths relative to the root), for secret scans. Throws when grep
    /// could not scan (it did not start, or exited 2 for an error): a scan
    /// that did not run must never read as "nothing found".
    public func files(containing needle: String) throws -> [String] {
        let listing = try Subprocess(["grep", "-rlF", "-D", "skip", "--", needle, path], environment: ["PATH": "/usr/bin:/bin"])
        let status = listing.wait(timeout: 60)
        let found = listing.outputText.split(separator: "\n").map { String($0.dropFirst(path.count)) }
        switch status {
        case .exited(0) where !found.isEmpty: return found
        case .exited(1) where found.isEmpty: return []
        default: throw TestFailure("grep -r for a secret under \(path) did not scan: \(status), \(listing.errorText)")
        }
    }

    public func write(_ file: String, _ text: String, mode: mode_t = 0o644) throws {
        let fd = open(path + file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw TestFailure("cannot write \(path + file)") }
        var bytes = Array(text.utf8)
        _ = Glibc.write(fd, &bytes, bytes.count)
        fchmod(fd, mode)
        close(fd)
    }

    public func read(_ file: String) -> String? {
        readText(path + file)
    }

    public func status(_ file: String) -> stat? {
        var info = stat()
        return lstat(path + file, &info) == 0 ? info : nil
    }

    /// Places a library at its own path inside the root (directories made).
    private func link(_ library: String) throws {
        let directory = String(library[..<(library.lastIndex(of: "/") ?? library.endIndex)])
        guard system("mkdir -p '\(path)\(directory)' && cp -Ln '\(library)' '\(path)\(library)'") == 0 else {
            throw TestFailure("cannot place \(library)")
        }
    }

    private func copy(_ source: String, to destination: String) throws {
        guard system("cp -L '\(source)' '\(destination)'") == 0 else { throw TestFailure("cp \(source)") }
    }
}
