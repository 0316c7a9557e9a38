import BerthCore
import CBerth
import Glibc

/// Clones the user's dotfiles repository into their home once and installs
/// it, as the devcontainers CLI and Codespaces do: DOTFILES_INSTALL_COMMAND,
/// else the repository's install script, else its dotfiles linked into the
/// home. Later starts install again only when DOTFILES_REF changed or the
/// last install did not finish: install scripts are not idempotent.
///
/// It runs in a short-lived process that already is the workspace user
/// (berth starts it so; it is not PID 1), so it waits with plain blocking
/// calls, each bounded: past its bound a child is killed with its whole
/// process group. Every line it prints begins with `dotfiles: `; git's and
/// the script's own output pass through unchanged.
public enum DotfilesInstaller {
    /// How long one git command (a clone, a fetch) may take.
    public static let defaultGitTimeout: Duration = .seconds(600)
    /// The record of the last install, relative to the home (XDG's state
    /// directory): the settings it was made with, whether berth cloned the
    /// target, and whether the install finished.
    public static let recordDirectory = ".local/state/berth"
    public static let recordName = "dotfiles"

    /// Where the installer's lines and its children's output go.
    public struct Streams: Sendable {
        /// The children's standard output.
        public var output: Int32
        /// The children's standard error, and the installer's own lines:
        /// messages about the work, as git's progress and errors are.
        public var error: Int32
        public init(output: Int32, error: Int32) {
            self.output = output
            self.error = error
        }
        public static let inherited = Streams(output: STDOUT_FILENO, error: STDERR_FILENO)
    }

    /// Clones (or updates) and installs `settings` in `home`. `environment`
    /// is what git and the install script get (the user's session
    /// environment). Returns 0 when the dotfiles are installed, or already
    /// were, and 1 after a line saying why not; never exits.
    public static func run(_ settings: DotfilesSettings, home: String, environment: [String], scriptTimeout: Duration,
                           gitTimeout: Duration = defaultGitTimeout, streams: Streams = .inherited) -> Int32 {
        let installation = Installation(settings: settings, environment: environment, scriptTimeout: scriptTimeout,
                                        gitTimeout: gitTimeout, streams: streams)
        do {
            try installation.run(home: home)
            return 0
        } catch {
            installation.say(error.line)
            return 1
        }
    }

    /// What this start does, from the record of the last one and what is
    /// at the target now.
    enum Plan: Equatable {
        case clone
        /// berth's clone, fetched and checked out again: `reason` says why.
        case update(reason: String)
        /// A directory berth did not clone: installed from as it is, never
        /// fetched into; `firstTime` when no install from it was recorded.
        case installFound(firstTime: Bool)
        case alreadyInstalled
    }

    enum TargetState: Equatable {
        case absent
        case directory
        case notADirectory
    }

    static func plan(_ settings: DotfilesSettings, record: DotfilesRecord?, target: TargetState) throws(DotfilesFailure) -> Plan {
        let shownTarget = "~/" + shown(settings.targetInHome)
        switch target {
        case .absent:
            return .clone
        case .notADirectory:
            throw DotfilesFailure("\(shownTarget) exists and is not a directory (a file or a symlink): berth leaves it alone; "
                + "remove it or set DOTFILES_TARGET to another place")
        case .directory:
            break
        }
        guard let record else { return .installFound(firstTime: true) }
        if record.clonedByBerth {
            // A different repository in the same place is the user's
            // history berth cannot merge; deleting it would lose their work.
            guard record.repositoryURL == settings.repositoryURL else {
                throw DotfilesFailure("\(shownTarget) was cloned from \(redactedURL(record.repositoryURL)), but DOTFILES_REPO is now "
                    + "\(redactedURL(settings.repositoryURL)): berth leaves it as it is; remove \(shownTarget) to clone the new one")
            }
            if record.ref != settings.ref {
                return .update(reason: "DOTFILES_REF changed from \(describe(record.ref)) to \(describe(settings.ref)): updating \(shownTarget)")
            }
            if !record.installed { return .update(reason: "the last install did not finish: updating \(shownTarget) and installing again") }
            return .alreadyInstalled
        }
        guard record.repositoryURL == settings.repositoryURL && record.ref == settings.ref else {
            throw DotfilesFailure("\(shownTarget) was there before berth and is used as it is, so a new DOTFILES_REPO or DOTFILES_REF "
                + "does not apply to it: remove \(shownTarget) to clone \(redactedURL(settings.repositoryURL)) there")
        }
        return record.installed ? .alreadyInstalled : .installFound(firstTime: false)
    }

    /// The variables git gets on top of the caller's: no prompt of git's
    /// own (GIT_TERMINAL_PROMPT=0, and an empty GIT_ASKPASS, which also
    /// keeps core.askPass and SSH_ASKPASS from being asked), so credentials
    /// come from the user's credential helper or nowhere; and none of the
    /// variables that point git at another repository than the clone.
    static func gitEnvironment(_ environment: [String]) -> [String] {
        environment.filter { entry in
            let name = entry.prefix { $0 != "=" }
            return name != "GIT_TERMINAL_PROMPT" && name != "GIT_ASKPASS" && !repositoryVariables.contains(String(name))
        } + ["GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS="]
    }

    /// `git rev-parse --local-env-vars` without the ones that carry
    /// configuration (GIT_CONFIG*: a credential helper may be set there).
    static let repositoryVariables: Set<String> = [
        "GIT_DIR", "GIT_WORK_TREE", "GIT_IMPLICIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_COMMON_DIR", "GIT_GRAFT_FILE", "GIT_SHALLOW_FILE", "GIT_NO_REPLACE_OBJECTS",
        "GIT_REPLACE_REF_BASE", "GIT_PREFIX", "GIT_INTERNAL_SUPER_PREFIX", "GIT_NAMESPACE",
    ]

    /// OWNER/NAME for a GitHub repository, else the URL as berth shows URLs.
    static func shownRepository(_ url: String) -> String {
        let github = "https://github.com/"
        if url.hasPrefix(github) && url.hasSuffix(".git") { return String(url.dropFirst(github.count).dropLast(4)) }
        return redactedURL(url)
    }

    static func describe(_ ref: String?) -> String {
        ref ?? "the default branch"
    }

    /// A name from the repository as a line shows it: a file name may hold
    /// a newline, which would forge a line of berth's.
    static func shown(_ text: String) -> String {
        String(text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7f ? "?" : Character($0) })
    }
}

/// Why the dotfiles were not installed: one line, printed after `dotfiles: `.
struct DotfilesFailure: Error {
    let line: String
    init(_ line: String) { self.line = line }
}

/// The record of the last install in this home: read at the next start to
/// tell a new ref from an unchanged one, and berth's clone from a directory
/// the user put there. `key=value` lines; written atomically, mode 0600.
struct DotfilesRecord: Equatable {
    var repositoryURL: String
    var ref: String?
    /// false: the target was there before berth; it is installed from but
    /// never fetched into.
    var clonedByBerth: Bool
    /// false until the install finished with status 0: a clone that was
    /// interrupted or a script that failed is tried again at the next start.
    var installed: Bool

    init(repositoryURL: String, ref: String?, clonedByBerth: Bool, installed: Bool) {
        self.repositoryURL = repositoryURL
        self.ref = ref
        self.clonedByBerth = clonedByBerth
        self.installed = installed
    }

    /// nil when the text is not a record (no repository line).
    init?(text: String) {
        var values: [Substring: Substring] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            values[line[..<equals]] = line[line.index(after: equals)...]
        }
        guard let repository = values["repository"], !repository.isEmpty else { return nil }
        repositoryURL = String(repository)
        ref = values["ref"].map(String.init)
        clonedByBerth = values["cloned-by-berth"] == "yes"
        installed = values["installed"] == "yes"
    }

    var text: String {
        "# berth's record of the dotfiles it installed in this home\n"
            + "repository=\(repositoryURL)\n"
            + (ref.map { "ref=\($0)\n" } ?? "")
            + "cloned-by-berth=\(clonedByBerth ? "yes" : "no")\n"
            + "installed=\(installed ? "yes" : "no")\n"
    }
}

/// One run of the installer: its steps in the order they happen.
private struct Installation {
    let settings: DotfilesSettings
    let environment: [String]
    let scriptTimeout: Duration
    let gitTimeout: Duration
    let streams: DotfilesInstaller.Streams
    let nullDevice = NullDevice()

    var shownTarget: String { "~/" + DotfilesInstaller.shown(settings.targetInHome) }
    var shownRepository: String { DotfilesInstaller.shownRepository(settings.repositoryURL) }
    var shownSettings: String {
        shownRepository + (settings.ref.map { " at \($0)" } ?? " at its default branch")
    }

    func say(_ text: String) {
        let bytes = Array(("dotfiles: " + text + "\n").utf8)
        var written = 0
        while written < bytes.count {
            let count = bytes[written...].withUnsafeBytes { buffer in
                try? retryingOnInterrupt { Glibc.write(streams.error, buffer.baseAddress, buffer.count) }
            }
            guard let count, count > 0 else { return }
            written += count
        }
    }

    func run(home homePath: String) throws(DotfilesFailure) {
        let home: DirectoryHandle
        do {
            home = try DirectoryHandle.open(homePath)
        } catch {
            throw DotfilesFailure("cannot open the home: \(error)")
        }
        let record = readRecord(in: home)
        let plan = try DotfilesInstaller.plan(settings, record: record, target: try targetState(in: home))
        var cloned = true
        switch plan {
        case .alreadyInstalled:
            say("\(shownSettings) already installed")
            return
        case .clone:
            say("cloning \(shownRepository) into \(shownTarget)")
            // Recorded before git starts: a clone killed half-way leaves a
            // directory that must read as berth's, not as the user's.
            try writeRecord(in: home, clonedByBerth: true, installed: false)
            try clone(in: home)
        case .update(let reason):
            say(reason)
            try writeRecord(in: home, clonedByBerth: true, installed: false)
            try update(try openTarget(in: home))
        case .installFound(let firstTime):
            if firstTime { say("\(shownTarget) was already there and berth did not clone it: using it as it is") }
            cloned = false
            try writeRecord(in: home, clonedByBerth: false, installed: false)
        }
        try install(from: try openTarget(in: home), into: home)
        try writeRecord(in: home, clonedByBerth: cloned, installed: true)
        say("installed \(cloned ? shownSettings : shownTarget)")
    }

    // MARK: The record and the target

    func readRecord(in home: DirectoryHandle) -> DotfilesRecord? {
        guard let directory = try? home.existingDirectory(DotfilesInstaller.recordDirectory),
              let text = directory.readText(DotfilesInstaller.recordName, limit: 64 << 10) else { return nil }
        return DotfilesRecord(text: text)
    }

    func writeRecord(in home: DirectoryHandle, clonedByBerth: Bool, installed: Bool) throws(DotfilesFailure) {
        let record = DotfilesRecord(repositoryURL: settings.repositoryURL, ref: settings.ref, clonedByBerth: clonedByBerth, installed: installed)
        do {
            let directory = try home.directory(DotfilesInstaller.recordDirectory, mode: 0o700, intermediateMode: 0o700)
            try directory.write(Array(record.text.utf8), to: DotfilesInstaller.recordName, mode: 0o600)
        } catch {
            throw DotfilesFailure("cannot keep the record of the install: \(error)")
        }
    }

    func targetState(in home: DirectoryHandle) throws(DotfilesFailure) -> DotfilesInstaller.TargetState {
        let (parentPath, name) = AtomicFile.split(settings.targetInHome)
        let parent: DirectoryHandle
        do {
            parent = parentPath == "." ? home : try home.existingDirectory(parentPath)
        } catch {
            if error.errno == ENOENT { return .absent }
            throw DotfilesFailure("cannot look for \(shownTarget): \(error)")
        }
        var info = stat()
        guard fstatat(parent.descriptor, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else {
            if errno == ENOENT { return .absent }
            throw DotfilesFailure("cannot look for \(shownTarget): \(String(cString: strerror(errno)))")
        }
        return (info.st_mode & S_IFMT) == S_IFDIR ? .directory : .notADirectory
    }

    func openTarget(in home: DirectoryHandle) throws(DotfilesFailure) -> DirectoryHandle {
        do {
            return try home.existingDirectory(settings.targetInHome)
        } catch {
            throw DotfilesFailure("cannot open \(shownTarget): \(error)")
        }
    }

    // MARK: git

    func clone(in home: DirectoryHandle) throws(DotfilesFailure) {
        // No submodules: their URLs come from the repository, not from
        // DOTFILES_REPO, and an install script can fetch them itself.
        // file:// needs nothing more: since git 2.38.1 protocol.file.allow
        // is `user`, which allows it for a clone the user asked for and
        // refuses it only for submodules (CVE-2022-39253).
        try git(["clone", "--no-recurse-submodules", "--", settings.repositoryURL, settings.targetInHome], in: home,
                failure: "could not clone \(redactedURL(settings.repositoryURL)) into \(shownTarget)")
        // The default branch is checked out already; any other ref, branch,
        // tag or commit alike, is checked out after the clone rather than
        // with `clone --branch`, which takes no commit.
        if let ref = settings.ref { try checkOut(ref, in: try openTarget(in: home)) }
    }

    func update(_ target: DirectoryHandle) throws(DotfilesFailure) {
        let again = "; remove \(shownTarget) to clone it again"
        try git(["fetch", "--no-recurse-submodules", "--tags", "origin"], in: target,
                failure: "could not fetch \(redactedURL(settings.repositoryURL)) into \(shownTarget)" + again)
        if let ref = settings.ref {
            try checkOut(ref, in: target)
        } else {
            let head = try gitOutput(["symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD"], in: target)
            guard let branch = head.map({ $0.hasPrefix("origin/") ? String($0.dropFirst(7)) : $0 }), !branch.isEmpty else {
                throw DotfilesFailure("cannot tell the default branch of \(redactedURL(settings.repositoryURL)) in \(shownTarget): "
                    + "set DOTFILES_REF" + again)
            }
            try checkOutBranch(branch, in: target)
        }
    }

    /// A branch of origin becomes a local branch that follows it, so the
    /// user can commit to their dotfiles; a tag or a commit is checked out
    /// detached. `--` after the ref: without it, a ref that matches no
    /// branch but a file (`install.sh`) would restore that file and
    /// succeed.
    func checkOut(_ ref: String, in target: DirectoryHandle) throws(DotfilesFailure) {
        if try gitSucceeds(["rev-parse", "--verify", "--quiet", "refs/remotes/origin/" + ref], in: target) {
            try checkOutBranch(ref, in: target)
            return
        }
        guard try gitSucceeds(["rev-parse", "--verify", "--quiet", ref + "^{commit}"], in: target) else {
            throw DotfilesFailure("DOTFILES_REF=\(ref) is not a branch, tag or commit of \(redactedURL(settings.repositoryURL))")
        }
        try git(["checkout", "--quiet", "--no-recurse-submodules", "--detach", ref, "--"], in: target,
                failure: "could not check out \(ref) in \(shownTarget)")
    }

    /// The local branch, made to follow origin's when missing, brought up
    /// to origin's by fast-forward only: commits of the user's own on it
    /// stop the update rather than being dropped.
    func checkOutBranch(_ branch: String, in target: DirectoryHandle) throws(DotfilesFailure) {
        let remote = "refs/remotes/origin/" + branch
        let failure = "could not check out branch \(branch) in \(shownTarget)"
        if try gitSucceeds(["rev-parse", "--verify", "--quiet", "refs/heads/" + branch], in: target) {
            try git(["checkout", "--quiet", "--no-recurse-submodules", branch, "--"], in: target, failure: failure)
            try git(["merge", "--quiet", "--ff-only", remote], in: target,
                    failure: "could not bring branch \(branch) in \(shownTarget) up to \(remote) (it has commits of its own?)")
        } else {
            try git(["checkout", "--quiet", "--no-recurse-submodules", "-b", branch, "--track", remote, "--"], in: target, failure: failure)
        }
    }

    func gitRequest(_ arguments: [String], in directory: DirectoryHandle) -> SpawnRequest {
        // submodule.recurse=false: a user's ~/.gitconfig may turn it on,
        // and checkout and merge would then fetch submodules after all.
        childRequest(["git", "-c", "submodule.recurse=false"] + arguments, in: directory,
                     environment: DotfilesInstaller.gitEnvironment(environment))
    }

    func git(_ arguments: [String], in directory: DirectoryHandle, failure: String) throws(DotfilesFailure) {
        let (end, _) = try BoundedChild.run(gitRequest(arguments, in: directory), named: "git", timeout: gitTimeout)
        switch end {
        case .finished(.exited(0)): return
        case .finished(let status): throw DotfilesFailure("\(failure): git \(arguments[0]) \(status.summary)")
        case .timedOut: throw DotfilesFailure("\(failure): git \(arguments[0]) did not finish within \(gitTimeout.shortDescription), so it was killed")
        case .lost: throw DotfilesFailure("\(failure): git \(arguments[0]) was reaped by another waiter, its status is unknown")
        }
    }

    func gitSucceeds(_ arguments: [String], in directory: DirectoryHandle) throws(DotfilesFailure) -> Bool {
        var request = gitRequest(arguments, in: directory)
        request.standardOutput = nullDevice.descriptor
        let (end, _) = try BoundedChild.run(request, named: "git", timeout: gitTimeout)
        return end == .finished(.exited(0))
    }

    /// The first line git prints, or nil when it fails.
    func gitOutput(_ arguments: [String], in directory: DirectoryHandle) throws(DotfilesFailure) -> String? {
        let (end, output) = try BoundedChild.run(gitRequest(arguments, in: directory), named: "git", timeout: gitTimeout, capturingOutput: true)
        guard end == .finished(.exited(0)) else { return nil }
        return String(decoding: output, as: UTF8.self).split(separator: "\n").first.map(String.init)
    }

    // MARK: Install

    func install(from target: DirectoryHandle, into home: DirectoryHandle) throws(DotfilesFailure) {
        if let command = settings.installCommand {
            say("running DOTFILES_INSTALL_COMMAND in \(shownTarget)")
            try runScript(["/bin/sh", "-c", command], named: "DOTFILES_INSTALL_COMMAND", in: target)
        } else if let script = DotfilesInstall.script(present: plainFiles(in: target)) {
            say("running \(script) in \(shownTarget)")
            // The user is who runs it, so X_OK asks the kernel the question
            // exec will ask; without the bit, sh reads it, as the
            // devcontainers CLI does.
            let executable = faccessat(target.descriptor, script, X_OK, 0) == 0
            try runScript(executable ? ["./" + script] : ["/bin/sh", "./" + script], named: script, in: target)
        } else {
            say("no install script in \(shownTarget): linking its dotfiles into the home")
            try link(from: target, into: home)
        }
    }

    /// What `DotfilesInstall.script(present:)` looks among: the plain files
    /// (a symlink to one counts) at the top of the clone and in script/.
    func plainFiles(in target: DirectoryHandle) -> Set<String> {
        func isPlainFile(_ name: String, in directory: DirectoryHandle) -> Bool {
            var info = stat()
            return fstatat(directory.descriptor, name, &info, 0) == 0 && (info.st_mode & S_IFMT) == S_IFREG
        }
        var present = Set(directoryNames(in: target.descriptor).filter { isPlainFile($0, in: target) })
        if let scripts = try? target.existingDirectory("script") {
            present.formUnion(directoryNames(in: scripts.descriptor).filter { isPlainFile($0, in: scripts) }.map { "script/" + $0 })
        }
        return present
    }

    func runScript(_ arguments: [String], named name: String, in target: DirectoryHandle) throws(DotfilesFailure) {
        let (end, _) = try BoundedChild.run(childRequest(arguments, in: target, environment: environment), named: name, timeout: scriptTimeout)
        switch end {
        case .finished(.exited(0)): return
        case .finished(let status): throw DotfilesFailure("\(name) in \(shownTarget) \(status.summary)")
        case .timedOut:
            throw DotfilesFailure("\(name) in \(shownTarget) did not finish within \(scriptTimeout.shortDescription): "
                + "it was killed with everything it started in its process group")
        case .lost: throw DotfilesFailure("\(name) in \(shownTarget) was reaped by another waiter, its status is unknown")
        }
    }

    /// Each dotfile of the clone as a symlink in the home, never in place
    /// of anything there: symlinkat fails on an existing name, so there is
    /// no moment between a check and the link for a file to appear in.
    func link(from target: DirectoryHandle, into home: DirectoryHandle) throws(DotfilesFailure) {
        for name in DotfilesInstall.linkedEntries(topLevelNames: directoryNames(in: target.descriptor)) {
            let destination = settings.target + "/" + name
            if symlinkat(destination, home.descriptor, name) == 0 {
                say("linked ~/\(DotfilesInstaller.shown(name))")
                continue
            }
            guard errno == EEXIST else {
                throw DotfilesFailure("cannot link ~/\(DotfilesInstaller.shown(name)): \(String(cString: strerror(errno)))")
            }
            if linkDestination(of: name, in: home) != destination {
                say("kept your ~/\(DotfilesInstaller.shown(name)) (not linked)")
            }
        }
    }

    func linkDestination(of name: String, in directory: DirectoryHandle) -> String? {
        var buffer = [UInt8](repeating: 0, count: Int(PATH_MAX))
        let length = buffer.withUnsafeMutableBufferPointer { raw in
            raw.baseAddress!.withMemoryRebound(to: CChar.self, capacity: raw.count) { readlinkat(directory.descriptor, name, $0, raw.count) }
        }
        guard length >= 0 else { return nil }
        return String(decoding: buffer[..<length], as: UTF8.self)
    }

    // MARK: Children

    /// No terminal (a session of its own): a prompt of git's, ssh's or the
    /// script's fails at once instead of waiting for an answer nobody will
    /// type. Its own process group, so a timeout kills all it started
    /// there; SIGKILL if the installer dies first, so nothing outlives the
    /// bound that was meant to hold it.
    func childRequest(_ arguments: [String], in directory: DirectoryHandle, environment: [String]) -> SpawnRequest {
        var request = SpawnRequest(arguments: arguments)
        request.environment = environment
        request.workingDirectoryFD = directory.descriptor
        request.isolation = .newSession
        request.standardInput = nullDevice.descriptor
        request.standardOutput = streams.output
        request.standardError = streams.error
        request.parentDeathSignal = SIGKILL
        return request
    }
}

/// /dev/null for a child's standard input, open while this value lives.
private final class NullDevice {
    let descriptor = open("/dev/null", O_RDWR | O_CLOEXEC)
    deinit { if descriptor >= 0 { close(descriptor) } }
}

private enum ChildEnd: Equatable {
    case finished(ChildStatus)
    /// Killed at its bound, with its process group.
    case timedOut
    /// Reaped by someone else: how it ended is not known.
    case lost
}

/// A child run to its end or to a deadline, whichever comes first; at the
/// deadline its process group gets SIGKILL and the child is reaped.
private enum BoundedChild {
    /// What a command that prints a line or two may print; the rest is
    /// read and dropped so it can never block on a full pipe.
    static let outputLimit = 64 << 10

    static func run(_ request: SpawnRequest, named name: String, timeout: Duration,
                    capturingOutput: Bool = false) throws(DotfilesFailure) -> (ChildEnd, [UInt8]) {
        var request = request
        var pipeEnds: [Int32] = [-1, -1]
        if capturingOutput {
            guard berth_pipe_cloexec(&pipeEnds) == 0 else { throw DotfilesFailure("cannot run \(name): pipe: \(String(cString: strerror(errno)))") }
            _ = fcntl(pipeEnds[0], F_SETFL, fcntl(pipeEnds[0], F_GETFL) | O_NONBLOCK)
            request.standardOutput = pipeEnds[1]
        }
        defer { for end in pipeEnds where end >= 0 { close(end) } }

        let pid: pid_t
        do {
            pid = try Spawner.spawn(request)
        } catch {
            if let failed = error.pid { reap(failed) }
            throw DotfilesFailure("cannot run \(name): \(error)")
        }
        if pipeEnds[1] >= 0 {
            close(pipeEnds[1])
            pipeEnds[1] = -1
        }
        // A pidfd turns readable when the child ends, so one poll waits for
        // both the end and the deadline; without one (a kernel before 5.3),
        // a short poll between looks.
        let pidfd = berth_pidfd_open(pid)
        defer { if pidfd >= 0 { close(pidfd) } }
        let deadline = MonotonicClock.now() + timeout.nanoseconds
        var output: [UInt8] = []
        while true {
            var raw: Int32 = 0
            let reaped = try? retryingOnInterrupt { waitpid(pid, &raw, WNOHANG) }
            if reaped == pid {
                let status = ChildStatus(waitStatus: raw)
                if status.isTermination {
                    if pipeEnds[0] >= 0 { readAvailable(&pipeEnds[0], into: &output) }
                    return (.finished(status), output)
                }
            }
            // Only a caller that reaps children behind our back (SIGCHLD
            // ignored) makes this fail: the end is then unknown.
            guard reaped != nil else { return (.lost, output) }
            let now = MonotonicClock.now()
            if now >= deadline {
                // The session's id is the child's pid, and so is its group's.
                kill(-pid, SIGKILL)
                reap(pid)
                return (.timedOut, output)
            }
            var watched: [pollfd] = []
            if pidfd >= 0 { watched.append(pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)) }
            if pipeEnds[0] >= 0 { watched.append(pollfd(fd: pipeEnds[0], events: Int16(POLLIN), revents: 0)) }
            let left = Int32(clamping: (deadline - now) / 1_000_000 + 1)
            // A signal ends a round early; the loop looks again.
            _ = poll(&watched, nfds_t(watched.count), pidfd >= 0 ? left : min(left, 50))
            if pipeEnds[0] >= 0 { readAvailable(&pipeEnds[0], into: &output) }
        }
    }

    /// Reads what the pipe holds now; closes it (and sets it to -1) at its end.
    private static func readAvailable(_ fd: inout Int32, into output: inout [UInt8]) {
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            let count = (try? retryingOnInterrupt { read(fd, &buffer, buffer.count) }) ?? -1
            if count > 0 {
                output.append(contentsOf: buffer[..<min(count, max(0, outputLimit - output.count))])
                continue
            }
            if count == 0 {
                close(fd)
                fd = -1
            }
            return
        }
    }

    private static func reap(_ pid: pid_t) {
        var raw: Int32 = 0
        while let reaped = try? retryingOnInterrupt({ waitpid(pid, &raw, 0) }), reaped == pid {
            if ChildStatus(waitStatus: raw).isTermination { return }
        }
    }
}
