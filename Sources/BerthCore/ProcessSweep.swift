import CBerth
import Glibc

/// Signals every process berth answers for, other than itself: the whole PID
/// namespace when berth is PID 1, otherwise its descendants (as a subreaper,
/// daemons that left their parent's group and session are still among them).
public enum ProcessSweep {
    /// Returns true when at least one process was signalled.
    @discardableResult
    public static func signalEveryoneElse(_ signal: Int32) -> Bool {
        if getpid() == 1 {
            // kill(-1) reaches every process in the namespace but init, with
            // no list to go stale between reading and signalling.
            return kill(-1, signal) == 0
        }
        var signalled = false
        for pid in descendants(of: getpid()) where signalDescendant(pid, signal) {
            signalled = true
        }
        return signalled
    }

    /// Descendants of `root`, parents before children.
    public static func descendants(of root: pid_t) -> [pid_t] {
        var children: [pid_t: [pid_t]] = [:]
        forEachProcess { pid, parent in children[parent, default: []].append(pid) }
        var result: [pid_t] = []
        var queue = children[root] ?? []
        while let next = queue.popLast() {
            result.append(next)
            queue.append(contentsOf: children[next] ?? [])
        }
        return result
    }

    /// A pid read from /proc may have died and been reused by the time we
    /// signal it. A pidfd pins the process; checking its parent after
    /// opening it proves it is still the one we found.
    private static func signalDescendant(_ pid: pid_t, _ signal: Int32) -> Bool {
        let pidfd = berth_pidfd_open(pid)
        guard pidfd >= 0 else { return false }
        defer { close(pidfd) }
        guard let parent = parentPID(of: pid), parent == getpid() || isDescendant(parent) else { return false }
        return berth_pidfd_send_signal(pidfd, signal) == 0
    }

    private static func isDescendant(_ pid: pid_t) -> Bool {
        var current = pid
        for _ in 0..<4096 {
            if current == getpid() { return true }
            guard current > 1, let parent = parentPID(of: current) else { return false }
            current = parent
        }
        return false
    }

    public static func parentPID(of pid: pid_t) -> pid_t? {
        guard let stat = readFile("/proc/\(pid)/stat", limit: 4096) else { return nil }
        return parseParent(fromStat: stat)
    }

    /// `pid (comm) state ppid ...`; comm may contain spaces and parentheses,
    /// so fields are counted from the last ')'.
    static func parseParent(fromStat stat: [UInt8]) -> pid_t? {
        guard let close = stat.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = stat[(close + 1)...].split(separator: UInt8(ascii: " "))
        guard fields.count > 1 else { return nil }
        return pid_t(String(decoding: fields[1], as: UTF8.self))
    }

    private static func forEachProcess(_ body: (pid_t, pid_t) -> Void) {
        guard let dir = opendir("/proc") else { return }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            guard let pid = pid_t(name), let parent = parentPID(of: pid) else { continue }
            body(pid, parent)
        }
    }
}
