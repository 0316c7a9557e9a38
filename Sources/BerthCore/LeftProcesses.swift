import CBerth
import Glibc

/// Processes a set-up task left running when its own process ended: those
/// still in its session (`cmd &`, `nohup cmd`) and those carrying its
/// marker in their environment (`setsid cmd` leaves the session, not the
/// environment). Only processes of the task's uid count: a marker in
/// anyone else's environment proves nothing about where they came from.
public struct LeftProcess: Equatable, Sendable {
    public let pid: pid_t
    /// Clock ticks since boot at its start (/proc/PID/stat field 22): with
    /// the pid, one process, even after the pid is reused.
    public let startTime: UInt64

    /// Still the process that was found.
    public var isAlive: Bool {
        LeftProcess.read(pid)?.startTime == startTime
    }

    /// SIGTERM or SIGKILL through a pidfd, after checking it is still the
    /// same process: a pid read earlier may have been reused since.
    @discardableResult
    public func signal(_ number: Int32) -> Bool {
        let pidfd = berth_pidfd_open(pid)
        guard pidfd >= 0 else { return false }
        defer { close(pidfd) }
        guard isAlive else { return false }
        return berth_pidfd_send_signal(pidfd, number) == 0
    }

    static let scanLimit = 32_768

    /// Every process of `uid` in session `session` or whose environment
    /// holds `marker` (`NAME=VALUE`, whole), but `excluding`.
    public static func find(session: pid_t, marker: String, uid: uid_t, excluding: Set<pid_t> = []) -> [LeftProcess] {
        let needle = Array(marker.utf8) + [0]
        var found: [LeftProcess] = []
        guard let dir = opendir("/proc") else { return [] }
        defer { closedir(dir) }
        // Each read is of /proc, which does not block on anything the user
        // controls; at most `scanLimit` entries, so a pid flood cannot hold
        // berth's loop (what lies past it is not counted, and is still
        // stopped at shutdown with everything else).
        var seen = 0
        while seen < scanLimit, let entry = readdir(dir) {
            seen += 1
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            guard let pid = pid_t(name), pid != getpid(), !excluding.contains(pid) else { continue }
            var info = stat()
            guard stat("/proc/\(pid)", &info) == 0, info.st_uid == uid, let process = read(pid) else { continue }
            if process.session == session || environmentHolds(pid, needle) {
                found.append(LeftProcess(pid: pid, startTime: process.startTime))
            }
        }
        return found
    }

    /// `environ` is NUL-separated; a whole entry matches, so `A=1` does
    /// not match `A=10` nor `XA=1`. Read up to 64 KiB (a longer environment
    /// hides a marker past it; it is the user's own process either way).
    /// The kernel reads it under the process's mmap lock: a process busy
    /// unmapping gigabytes delays this read by as long; holding the lock
    /// for good takes userfaultfd's kernel faults or FUSE, which an
    /// unprivileged container does not give its user.
    static func environmentHolds(_ pid: pid_t, _ needle: [UInt8]) -> Bool {
        guard let bytes = readFile("/proc/\(pid)/environ", limit: 64 << 10) else { return false }
        var start = 0
        while start < bytes.count {
            let end = bytes[start...].firstIndex(of: 0) ?? bytes.count
            if end - start == needle.count - 1, bytes[start..<end].elementsEqual(needle.dropLast()) { return true }
            start = end + 1
        }
        return false
    }

    /// Session and start time from /proc/PID/stat, fields counted after
    /// the last ')' (the command name may hold spaces and parentheses).
    static func read(_ pid: pid_t) -> (session: pid_t, startTime: UInt64)? {
        guard let stat = readFile("/proc/\(pid)/stat", limit: 4096), let close = stat.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = stat[(close + 1)...].split(separator: UInt8(ascii: " "))
        // After ')': state(3) ppid(4) pgrp(5) session(6) ... starttime(22).
        guard fields.count > 19,
              let session = pid_t(String(decoding: fields[3], as: UTF8.self)),
              let start = UInt64(String(decoding: fields[19], as: UTF8.self)) else { return nil }
        return (session, start)
    }
}
