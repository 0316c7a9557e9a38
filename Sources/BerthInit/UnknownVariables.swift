import BerthCore
import BerthPlugins
import Glibc

/// A variable in berth's families (`BERTH_*`, `SUPERVISOR_*`) that nothing
/// reads is almost always a typo or a name from another version's docs,
/// and ignoring it silently leaves the user believing it took effect.
enum UnknownVariables {
    static let families = ["BERTH_", "SUPERVISOR_"]

    /// The init's own variables (its options), declared beside NativeCommand.
    static let initOptions = [
        "BERTH_VERBOSITY", "BERTH_KILL_GROUP", "BERTH_REWRITE", "BERTH_REMAP_EXIT", "BERTH_PDEATH_SIGNAL", "BERTH_KILL_GRACE",
        "BERTH_WARN_ON_REAP",
    ]

    /// One line per unknown name in this process's environment, naming the
    /// nearest known one when it is a likely typo. The environment is
    /// scanned as C strings: a plain start with no such name builds nothing.
    static func warnings(in names: [String]? = nil) -> [String] {
        let candidates = names ?? familyNamesInEnvironment()
        guard !candidates.isEmpty else { return [] }
        var known = Set(initOptions + Configuration.variables.map(\.name))
        forEachPlugin { plugin in
            for variable in plugin.variables {
                known.insert(variable.name)
                if variable.isSecret { known.insert(variable.name + "_FILE") }
            }
        }
        return candidates.filter { !known.contains($0) }.sorted().map { name in
            let nearest = known.filter { $0.hasPrefix(name.hasPrefix("BERTH_") ? "BERTH_" : "SUPERVISOR_") }
                .map { ($0, editDistance($0, name)) }.filter { $0.1 <= 2 }.min { $0.1 < $1.1 }?.0
            return "\(name) is not a variable berth reads" + (nearest.map { " (did you mean \($0)?)" } ?? "") + "; see docs/variables.md"
        }
    }

    private static func familyNamesInEnvironment() -> [String] {
        var found: [String] = []
        var cursor = environ
        while let entry = cursor.pointee {
            cursor += 1
            guard strncmp(entry, "BERTH_", 6) == 0 || strncmp(entry, "SUPERVISOR_", 11) == 0 else { continue }
            let line = String(cString: entry)
            guard let equals = line.firstIndex(of: "=") else { continue }
            found.append(String(line[..<equals]))
        }
        return found
    }

    private static func editDistance(_ first: String, _ second: String) -> Int {
        let a = Array(first.utf8), b = Array(second.utf8)
        guard !a.isEmpty, !b.isEmpty else { return max(a.count, b.count) }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}
