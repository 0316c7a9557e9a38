import BerthCore
import Glibc

/// `berth install-packages NAME...`: the one command BERTH_SUDO=packages
/// lets the workspace user run as root. The user (or anything they run)
/// chooses only the arguments, so every argument must be a plain Debian
/// package name: nothing apt-get could read as an option, a file, a
/// version, a release or a removal. Everything else apt-get sees is fixed
/// here, not inherited: the program's path, its options, its environment
/// (no APT_CONFIG, no HOME or PATH of the user), its directory and umask.
/// What it cannot narrow: any package of the configured archive can be
/// installed, and its maintainer scripts run as root (docs/provisioning.md).
public enum PackageInstall {
    public static let verb = "install-packages"
    public static let maximumNames = 32
    static let aptGet = "/usr/bin/apt-get"
    static let lists = "/var/lib/apt/lists"
    /// Lists older than this are fetched again: an image's lists go stale
    /// and the archive drops the versions they name.
    static let listsMaximumAge: time_t = 24 * 60 * 60
    /// All that apt-get, dpkg and the maintainer scripts get.
    public static let environment = [
        "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND=noninteractive", "HOME=/root", "LC_ALL=C.UTF-8",
    ]
    static let localFileSuffixes = [".deb", ".udeb", ".ddeb", ".dsc", ".changes"]
    static let architectures: Set<String> = ["amd64", "arm64", "armhf", "i386"]

    /// The verb: 2 and one line naming the argument when one is not a
    /// package name, 1 when not root, otherwise apt-get's status.
    public static func runCommand(_ names: [String]) -> Int32 {
        if let refusal = refusal(names) {
            StandardError.write("berth \(verb): \(refusal)\n")
            return 2
        }
        guard getuid() == 0, geteuid() == 0 else {
            StandardError.write("berth \(verb): needs root: sudo berth \(verb) NAME... (allowed when BERTH_SUDO=packages)\n")
            return 1
        }
        umask(0o022)
        guard chdir("/") == 0 else {
            StandardError.write("berth \(verb): cannot change directory to /\n")
            return 1
        }
        if listsNeedUpdate() {
            let status = runAptGet(["update"])
            guard status == 0 else {
                StandardError.write("berth \(verb): apt-get update failed (status \(status))\n")
                return status
            }
        }
        // --no-remove: a package that conflicts with an installed one would
        // otherwise remove it (sudo, openssh-server) under -y.
        return runAptGet(["install", "-y", "--no-install-recommends", "--no-remove", "--"] + names)
    }

    /// Why `names` are not installed, as one line naming the first bad
    /// argument; nil when each is a package name.
    public static func refusal(_ names: [String]) -> String? {
        guard !names.isEmpty else { return "give one or more Debian package names" }
        if names.count > maximumNames {
            return "at most \(maximumNames) package names at a time: '\(shown(names[maximumNames]))' is number \(maximumNames + 1)"
        }
        for name in names where !isPackageName(name) {
            return "'\(shown(name))' is not a Debian package name (lowercase letters, digits and + - . after a letter or digit, "
                + "optionally :amd64, :arm64, :armhf or :i386; no options, files, versions or releases)"
        }
        return nil
    }

    /// Debian policy's package name (two or more of a-z 0-9 + - ., the first
    /// a letter or digit), optionally with an architecture. A last `-`
    /// tells apt-get to remove, so it may not end one (a last `+`, as in
    /// g++, at worst means install); nor may a package file's extension.
    public static func isPackageName(_ text: String) -> Bool {
        let parts = text.utf8.split(separator: UInt8(ascii: ":"), maxSplits: 1, omittingEmptySubsequences: false)
        guard let name = parts.first, (2...100).contains(name.count) else { return false }
        if parts.count == 2 {
            guard architectures.contains(String(decoding: parts[1], as: UTF8.self)) else { return false }
        }
        let lowercaseOrDigit = { (byte: UInt8) in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
        }
        guard let first = name.first, lowercaseOrDigit(first), name.last != UInt8(ascii: "-") else { return false }
        // apt-get installs an existing file so named rather than a package.
        let base = String(decoding: name, as: UTF8.self)
        guard !localFileSuffixes.contains(where: { base.hasSuffix($0) }) else { return false }
        return name.allSatisfy { lowercaseOrDigit($0) || $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") }
    }

    /// An argument as the error shows it: one line, no terminal controls.
    static func shown(_ text: String) -> String {
        var out = ""
        for byte in text.utf8.prefix(80) {
            if byte >= 0x20 && byte < 0x7f && byte != UInt8(ascii: "\\") && byte != UInt8(ascii: "'") {
                out.append(Character(Unicode.Scalar(byte)))
            } else {
                out += "\\x" + String(byte, radix: 16, uppercase: false).leftPadded(to: 2)
            }
        }
        return text.utf8.count > 80 ? out + "..." : out
    }

    /// Debian's images ship without package lists.
    static func listsNeedUpdate() -> Bool {
        guard let directory = opendir(lists) else { return true }
        defer { closedir(directory) }
        var newest: time_t = 0
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard name.hasSuffix("_Packages") || name.contains("_Packages.") else { continue }
            var info = stat()
            if fstatat(dirfd(directory), name, &info, AT_SYMLINK_NOFOLLOW) == 0 { newest = max(newest, info.st_mtim.tv_sec) }
        }
        return newest == 0 || time(nil) - newest > listsMaximumAge
    }

    /// apt-get by its path, with the fixed environment, in /, stdin from
    /// /dev/null; its status (128+N when signal N ended it).
    static func runAptGet(_ arguments: [String]) -> Int32 {
        var request = SpawnRequest(arguments: [aptGet] + arguments)
        request.environment = environment
        request.workingDirectory = "/"
        request.isolation = .sameGroup
        let null = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { if null >= 0 { close(null) } }
        request.standardInput = null
        let pid: pid_t
        do {
            pid = try Spawner.spawn(request)
        } catch {
            if let failed = error.pid { _ = reap(failed) }
            StandardError.write("berth \(verb): cannot run \(aptGet): \(error)\n")
            return 1
        }
        return reap(pid)
    }

    private static func reap(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while true {
            guard (try? retryingOnInterrupt({ waitpid(pid, &status, 0) })) == pid else { return 1 }
            let decoded = ChildStatus(waitStatus: status)
            if decoded.isTermination { return decoded.shellExitCode }
        }
    }
}

private extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
