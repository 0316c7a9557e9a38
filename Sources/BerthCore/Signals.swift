import CBerth
import Glibc

/// Signal numbers and names, and the parsing every CLI face shares.
public enum Signals {
    /// Classic names, without the SIG prefix, in number order.
    static let names: [(name: String, number: Int32)] = [
        ("HUP", SIGHUP), ("INT", SIGINT), ("QUIT", SIGQUIT), ("ILL", SIGILL),
        ("TRAP", SIGTRAP), ("ABRT", SIGABRT), ("BUS", SIGBUS), ("FPE", SIGFPE),
        ("KILL", SIGKILL), ("USR1", SIGUSR1), ("SEGV", SIGSEGV), ("USR2", SIGUSR2),
        ("PIPE", SIGPIPE), ("ALRM", SIGALRM), ("TERM", SIGTERM), ("STKFLT", SIGSTKFLT),
        ("CHLD", SIGCHLD), ("CONT", SIGCONT), ("STOP", SIGSTOP), ("TSTP", SIGTSTP),
        ("TTIN", SIGTTIN), ("TTOU", SIGTTOU), ("URG", SIGURG), ("XCPU", SIGXCPU),
        ("XFSZ", SIGXFSZ), ("VTALRM", SIGVTALRM), ("PROF", SIGPROF), ("WINCH", SIGWINCH),
        ("IO", SIGIO), ("PWR", SIGPWR), ("SYS", SIGSYS),
    ]

    public static var realtimeMin: Int32 { berth_sigrtmin() }
    public static var realtimeMax: Int32 { berth_sigrtmax() }

    /// Signals a kernel raises for a fault in the receiving process itself.
    /// Only a copy sent by a user (kill, sigqueue) is worth forwarding.
    public static var faults: SignalSet { [SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS, SIGABRT] }

    public static var jobControl: SignalSet { [SIGTSTP, SIGTTIN, SIGTTOU] }

    public static func name(of number: Int32) -> String {
        if let entry = names.first(where: { $0.number == number }) { return "SIG" + entry.name }
        if number >= realtimeMin && number <= realtimeMax {
            return number == realtimeMin ? "SIGRTMIN" : "SIGRTMIN+\(number - realtimeMin)"
        }
        return "signal \(number)"
    }

    /// Accepts `TERM`, `SIGTERM`, `sigterm`, `15`, `RTMIN+2`.
    public static func parse(_ text: String) -> Int32? {
        if let number = Int32(text) {
            return isValid(number) ? number : nil
        }
        var upper = text.uppercased()
        if upper.hasPrefix("SIG") { upper.removeFirst(3) }
        if let entry = names.first(where: { $0.name == upper }) { return entry.number }
        if upper == "RTMIN" { return realtimeMin }
        if upper == "RTMAX" { return realtimeMax }
        if upper.hasPrefix("RTMIN+"), let offset = Int32(upper.dropFirst(6)) {
            let number = realtimeMin + offset
            return offset >= 0 && number <= realtimeMax ? number : nil
        }
        return nil
    }

    public static func isValid(_ number: Int32) -> Bool {
        (number >= 1 && number <= 31) || (number >= realtimeMin && number <= realtimeMax)
    }
}

/// A set of signals as a bit mask: the forwarding path runs for every
/// signal, so it stays a few instructions on data already in a register.
public struct SignalSet: Equatable, Sendable, ExpressibleByArrayLiteral {
    public private(set) var bits: UInt64 = 0

    public init(arrayLiteral numbers: Int32...) {
        for number in numbers { insert(number) }
    }

    public init<S: Sequence>(_ numbers: S) where S.Element == Int32 {
        for number in numbers { insert(number) }
    }

    @inline(__always)
    public func contains(_ number: Int32) -> Bool {
        number >= 1 && number <= 64 && bits & (1 << UInt64(number - 1)) != 0
    }

    public mutating func insert(_ number: Int32) {
        if number >= 1 && number <= 64 { bits |= 1 << UInt64(number - 1) }
    }

    /// Removes `number`; returns whether it was there.
    @discardableResult
    public mutating func remove(_ number: Int32) -> Bool {
        let present = contains(number)
        if present { bits &= ~(1 << UInt64(number - 1)) }
        return present
    }

    public var isEmpty: Bool { bits == 0 }
}

/// What the kernel told us about one received signal.
public struct ReceivedSignal: Sendable {
    public let number: Int32
    /// `si_code`: <= 0 when a process sent it (kill, sigqueue, tgkill).
    public let code: Int32
    public let senderPID: pid_t

    public init(number: Int32, code: Int32, senderPID: pid_t) {
        self.number = number
        self.code = code
        self.senderPID = senderPID
    }

    public var wasSentByProcess: Bool { code <= 0 }
}
