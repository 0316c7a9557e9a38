import Glibc

extension StringProtocol {
    /// Without leading and trailing spaces, tabs, CRs and LFs.
    public func trimmingWhitespace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" }
        return String(drop(while: isSpace).reversed().drop(while: isSpace).reversed())
    }
}

/// `a, b,,c` → ["a", "b", "c"]: the form of every comma-separated variable.
public func commaSeparated(_ text: String?) -> [String] {
    (text ?? "").split(separator: ",").map { $0.trimmingWhitespace() }.filter { !$0.isEmpty }
}
