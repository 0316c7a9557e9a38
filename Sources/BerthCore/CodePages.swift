import CBerth

/// Resident code of a long-lived PID 1. Code only start-up or a periodic
/// job ran (provisioning, a token refresh's helper and file writes) stays
/// mapped and counts in RSS until dropped; dropping the page-table entries
/// of read-only code costs nothing (what runs again comes back as a minor
/// fault from the page cache).
public enum CodePages {
    /// Drops them `delay` from now, once however often it is asked for
    /// before then. Only for a PID 1 that already keeps timers: a plain
    /// init keeps its signal-only fast path instead.
    public static func releaseSoon(on loop: EventLoop, after delay: Duration = .seconds(1)) {
        guard !pending else { return }
        pending = true
        loop.schedule(after: delay) {
            pending = false
            _ = berth_drop_code_pages()
        }
    }

    nonisolated(unsafe) private static var pending = false
}
