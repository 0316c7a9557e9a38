import BerthCore
import Glibc

/// Wall-clock time for reports and the API (the loop's timers use the
/// monotonic clock): milliseconds since the epoch, shown as ISO 8601 UTC.
public struct WallTime: Sendable, Equatable, Comparable {
    public let milliseconds: Int64

    public static func now() -> WallTime {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return WallTime(milliseconds: Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000)
    }

    public init(milliseconds: Int64) { self.milliseconds = milliseconds }

    public var iso8601: String {
        var seconds = time_t(milliseconds / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let millis = Int(milliseconds % 1000)
        let fraction = millis < 10 ? "00\(millis)" : millis < 100 ? "0\(millis)" : "\(millis)"
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(fraction)Z"
    }

    /// `20261123T221000Z`: sorts like the time, safe in a file name.
    public var compact: String {
        iso8601.filter { $0 != "-" && $0 != ":" }.split(separator: ".").first.map { String($0) + "Z" } ?? "\(milliseconds)"
    }

    public static func < (a: WallTime, b: WallTime) -> Bool { a.milliseconds < b.milliseconds }
}

/// Established TCP connections by local port, from /proc/net/tcp and tcp6:
/// "sl local_address rem_address st ...", addresses as HEXIP:HEXPORT, state
/// 01 is ESTABLISHED. Connections a server accepted have its port as local.
public enum TCPTable {
    public static func established(onLocalPorts ports: Set<Int>, in text: String) -> [Int: Int] {
        var counts: [Int: Int] = [:]
        for line in text.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count > 3, fields[3] == "01",
                  let colon = fields[1].lastIndex(of: ":"),
                  let port = Int(fields[1][fields[1].index(after: colon)...], radix: 16),
                  ports.contains(port) else { continue }
            counts[port, default: 0] += 1
        }
        return counts
    }

    public static func read(onLocalPorts ports: Set<Int>, procNet: String = "/proc/net") -> [Int: Int] {
        var counts: [Int: Int] = [:]
        for file in ["tcp", "tcp6"] {
            guard let bytes = readFile(procNet + "/" + file, limit: 64 << 20) else { continue }
            for (port, count) in established(onLocalPorts: ports, in: String(decoding: bytes, as: UTF8.self)) {
                counts[port, default: 0] += count
            }
        }
        return counts
    }
}

/// Live SSH sessions: OpenSSH names each session's process "sshd: USER@TTY"
/// (or "sshd-session: USER@TTY" from 9.8 on), "USER@notty" without a
/// terminal. /proc/PID/cmdline is readable by every user.
public enum SSHSessions {
    public static func count(proc: String = "/proc") -> Int {
        (directoryNames(proc) ?? []).filter { name in
            guard let first = name.utf8.first, first >= UInt8(ascii: "0"), first <= UInt8(ascii: "9"),
                  let bytes = readFile(proc + "/" + name + "/cmdline", limit: 4096) else { return false }
            return isSession(String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self))
        }.count
    }

    public static func isSession(_ title: String) -> Bool {
        guard title.hasPrefix("sshd: ") || title.hasPrefix("sshd-session: ") else { return false }
        return title.contains("@") && !title.hasSuffix("[priv]") && !title.contains("[listener]")
    }
}

/// What the monitor last saw, and when each kind was last in use.
public struct ActivitySnapshot: Sendable, Equatable {
    public var lastIDEActivity: WallTime?
    public var lastSSHActivity: WallTime?
    public var activeIDEConnections = 0
    public var activeSSHConnections = 0
    public var sshSessions = 0

    public init() {}

    public var isActive: Bool { activeIDEConnections > 0 || activeSSHConnections > 0 || sshSessions > 0 }

    public var lastActivity: WallTime? {
        switch (lastIDEActivity, lastSSHActivity) {
        case let (ide?, ssh?): max(ide, ssh)
        case let (ide?, nil): ide
        case let (nil, ssh?): ssh
        case (nil, nil): nil
        }
    }

    /// Counts from one poll; a kind in use gets `now` as its last activity.
    public mutating func update(ide: Int, ssh: Int, sessions: Int, at now: WallTime) {
        activeIDEConnections = ide
        activeSSHConnections = ssh
        sshSessions = sessions
        if ide > 0 { lastIDEActivity = now }
        if ssh > 0 || sessions > 0 { lastSSHActivity = now }
    }

    /// Whether a report is due: the connection counts changed (timestamps
    /// moving while a session goes on are what the heartbeat carries).
    public func differsInUse(from other: ActivitySnapshot) -> Bool {
        activeIDEConnections != other.activeIDEConnections || activeSSHConnections != other.activeSSHConnections
            || sshSessions != other.sshSessions
    }
}
