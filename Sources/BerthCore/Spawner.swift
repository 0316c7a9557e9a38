import CBerth
import Glibc
import SystemPackage

/// What to start and how to isolate it. Plain data: the init, provisioning
/// helpers and services all describe their children with it.
public struct SpawnRequest: Sendable {
    public enum Isolation: Sendable {
        case sameGroup
        case newProcessGroup
        case newSession
    }

    public struct Identity: Sendable {
        public var uid: uid_t
        public var gid: gid_t
        public var groups: [gid_t]
        public init(uid: uid_t, gid: gid_t, groups: [gid_t]) {
            self.uid = uid
            self.gid = gid
            self.groups = groups
        }
    }

    public var arguments: [String]
    /// nil: berth's own environment.
    public var environment: [String]?
    /// nil: berth's current directory at spawn time.
    public var workingDirectory: String?
    /// An open directory to start in (berth itself may have moved on).
    public var workingDirectoryFD: Int32 = -1
    public var isolation: Isolation = .newProcessGroup
    /// Hand the terminal on fd 0 to the child (only if berth holds its foreground).
    public var takeTerminal = false
    public var standardInput: Int32 = -1
    public var standardOutput: Int32 = -1
    public var standardError: Int32 = -1
    public var identity: Identity?
    /// With an identity: capabilities kept as ambient across the change of
    /// uid and exec (bit N = capability N); those berth lacks are dropped.
    public var ambientCapabilities: UInt64 = 0
    /// PR_SET_NO_NEW_PRIVS: nothing it execs can gain privileges (setuid
    /// binaries, file capabilities).
    public var noNewPrivileges = false
    public var parentDeathSignal: Int32 = 0
    /// Exit status of the child when exec fails; 0 means 127/126.
    public var execFailureStatus: Int32 = 0
    /// Written to stderr by the child right after isolation.
    public var childNote: String?

    public init(arguments: [String]) {
        self.arguments = arguments
    }
}

public struct SpawnError: Error, CustomStringConvertible {
    public enum Step: Sendable { case fork, isolate, stdio, chdir, identity, exec }
    public let step: Step
    public let errno: Errno
    /// The child that failed, still to be reaped; nil when no child was made.
    public let pid: pid_t?

    public var description: String {
        switch step {
        case .fork: return "could not start a process: \(errno)"
        case .isolate: return "could not isolate the child: \(errno)"
        case .stdio: return "could not set up standard streams: \(errno)"
        case .chdir: return "could not change directory: \(errno)"
        case .identity: return "could not drop privileges: \(errno)"
        case .exec: return errno.description
        }
    }
}

public enum Spawner {
    /// Starts `request` and returns its pid once exec has succeeded. On
    /// failure the error carries the failed child's pid: it exits with the
    /// exec failure status and the event loop reaps it like any other.
    public static func spawn(_ request: SpawnRequest) throws(SpawnError) -> pid_t {
        let cArgs = cStringList(request.arguments)
        let cEnv = request.environment.map(cStringList)
        let cwd = request.workingDirectory.map { strdup($0) } ?? nil
        let note = request.childNote.map { strdup($0) } ?? nil
        let groups = request.identity?.groups ?? []
        defer {
            freeCStringList(cArgs, count: request.arguments.count)
            if let cEnv, let environment = request.environment { freeCStringList(cEnv, count: environment.count) }
            free(cwd)
            free(note)
        }

        var result = berth_spawn_result()
        let rc: Int32 = groups.withUnsafeBufferPointer { groupBuffer in
            var raw = berth_spawn_request()
            raw.file = UnsafePointer(cArgs[0])
            raw.argv = UnsafePointer(cArgs)
            raw.envp = cEnv.map { UnsafePointer($0) }
            raw.cwd = UnsafePointer(cwd)
            raw.cwd_fd = request.workingDirectoryFD
            raw.isolation = switch request.isolation {
            case .sameGroup: Int32(BERTH_SAME_GROUP.rawValue)
            case .newProcessGroup: Int32(BERTH_NEW_PROCESS_GROUP.rawValue)
            case .newSession: Int32(BERTH_NEW_SESSION.rawValue)
            }
            raw.take_terminal = request.takeTerminal ? 1 : 0
            raw.stdin_fd = request.standardInput
            raw.stdout_fd = request.standardOutput
            raw.stderr_fd = request.standardError
            if let identity = request.identity {
                raw.set_ids = 1
                raw.uid = identity.uid
                raw.gid = identity.gid
                raw.groups = groupBuffer.baseAddress
                raw.group_count = groupBuffer.count
                raw.ambient_capabilities = request.ambientCapabilities & berth_permitted_capabilities()
            }
            raw.no_new_privileges = request.noNewPrivileges ? 1 : 0
            raw.parent_death_signal = request.parentDeathSignal
            raw.exec_failure_status = request.execFailureStatus
            raw.child_note = UnsafePointer(note)
            return berth_spawn(&raw, &result)
        }
        if rc == 0 { return result.pid }
        let step: SpawnError.Step = switch UInt32(result.failed_step) {
        case BERTH_STEP_FORK.rawValue: .fork
        case BERTH_STEP_ISOLATE.rawValue: .isolate
        case BERTH_STEP_STDIO.rawValue: .stdio
        case BERTH_STEP_CHDIR.rawValue: .chdir
        case BERTH_STEP_IDENTITY.rawValue: .identity
        default: .exec
        }
        throw SpawnError(step: step, errno: Errno(rawValue: result.error), pid: result.pid > 0 ? result.pid : nil)
    }

    /// True when fd 0 is a terminal whose foreground process group is ours:
    /// only then may a child take it (never steal a terminal from a shell).
    public static func holdsTerminalForeground() -> Bool {
        isatty(STDIN_FILENO) == 1 && tcgetpgrp(STDIN_FILENO) == getpgrp()
    }
}

/// A NULL-terminated list of C strings for execve. A buffer, not an array of
/// optional pointers: the first such array costs the Swift runtime ~39,000
/// instructions of metadata at start-up (callgrind), a tenth of berth's.
private func cStringList(_ strings: [String]) -> UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> {
    let list = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: strings.count + 1)
    var index = 0
    for string in strings {
        list[index] = strdup(string)
        index += 1
    }
    list[index] = nil
    return list
}

private func freeCStringList(_ list: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>, count: Int) {
    for index in 0..<count { free(list[index]) }
    list.deallocate()
}
