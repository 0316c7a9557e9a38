/// Durations in the units the system calls and berth's lines use: one
/// conversion each, for every module.
extension Duration {
    /// For CLOCK_MONOTONIC arithmetic; 0 for a negative duration.
    public var nanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        if seconds < 0 { return 0 }
        return UInt64(seconds) * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000)
    }

    /// Whole milliseconds (poll and curl timeouts, backoff arithmetic).
    public var milliseconds: Int {
        Int(components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000)
    }

    /// `90 s`, `1.5 s`, `0.25 s`, `2 d`: how a duration is shown in berth's lines.
    public var shortDescription: String {
        let (seconds, attoseconds) = components
        if attoseconds == 0 && seconds >= 86_400 && seconds % 86_400 == 0 { return "\(seconds / 86_400) d" }
        let milliseconds = attoseconds / 1_000_000_000_000_000
        if milliseconds == 0 { return "\(seconds) s" }
        var fraction = String(milliseconds)
        while fraction.count < 3 { fraction = "0" + fraction }
        while fraction.hasSuffix("0") { fraction.removeLast() }
        return "\(seconds).\(fraction) s"
    }
}
