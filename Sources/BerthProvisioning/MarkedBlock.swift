import Glibc

/// berth's lines in a file the user also edits (authorized_keys, .gitconfig,
/// .bashrc): they sit between a BEGIN and an END marker, replaced whole at
/// every start; everything outside the markers is the user's and stays.
public struct MarkedBlock: Sendable {
    public enum Placement: Sendable {
        /// Before the user's lines (shell setup that must run before
        /// `.bashrc` returns early for non-interactive shells).
        case top
        /// After them (settings that should win).
        case bottom
    }

    public let begin: String
    public let end: String
    public let placement: Placement

    public init(begin: String, end: String = "# END berth", placement: Placement = .bottom) {
        self.begin = begin
        self.end = end
        self.placement = placement
    }

    /// The user's lines without berth's block.
    public func userLines(of existing: String?) -> [Substring] {
        var kept: [Substring] = []
        var inBlock = false
        for line in (existing ?? "").split(separator: "\n", omittingEmptySubsequences: false) {
            if line == begin { inBlock = true; continue }
            if inBlock { if line == end { inBlock = false }; continue }
            kept.append(line)
        }
        while let last = kept.last, last.isEmpty { kept.removeLast() }
        return kept
    }

    /// `existing` with berth's block replaced by `lines` (removed when empty).
    public func apply(_ lines: [String], to existing: String?) -> String {
        let own = userLines(of: existing).map(String.init)
        let block = lines.isEmpty ? [] : [begin] + lines + [end]
        let all = placement == .top ? block + own : own + block
        return all.isEmpty ? "" : all.joined(separator: "\n") + "\n"
    }
}
