/// A process environment: `NAME=value` lines, one per name, sorted by name.
/// berth reads its own once at start (`inherited()`), takes secrets out and
/// puts the workspace user's session in, and hands the lines to exec as
/// they are: one type from start to exec. Lines, not a dictionary: the
/// first `[String: String]` a process builds costs the Swift runtime
/// ~240,000 instructions of metadata (callgrind), more than tini's start-up.
public struct Environment: Sendable, Equatable {
    public private(set) var lines: [String]

    /// From `NAME=value` lines; for a name given twice the last line wins
    /// (as in `currentEnvironmentLines`); a line without `=` is dropped.
    public init(lines: some Sequence<String>) {
        var kept: [String] = []
        for line in lines where line.utf8.contains(UInt8(ascii: "=")) {
            let name = Self.name(of: line)
            kept.removeAll { Self.name(of: $0).utf8.elementsEqual(name.utf8) }
            kept.append(line)
        }
        self.lines = kept.sorted(by: Self.byName)
    }

    public init(_ values: [String: String]) {
        lines = values.map { $0.key + "=" + $0.value }.sorted(by: Self.byName)
    }

    /// This process's environment, as the kernel gave it to berth.
    public static func inherited() -> Environment {
        var environment = Environment(lines: [])
        environment.lines = currentEnvironmentLines().sorted(by: byName)
        return environment
    }

    /// The value of `name` (nil when unset; an empty value is "").
    public subscript(name: String) -> String? {
        get {
            guard let index = index(of: name) else { return nil }
            let line = lines[index]
            return String(line[line.utf8.index(line.utf8.startIndex, offsetBy: name.utf8.count + 1)...])
        }
        set {
            let existing = index(of: name)
            switch (existing, newValue) {
            case (let index?, let value?): lines[index] = name + "=" + value
            case (let index?, nil): lines.remove(at: index)
            case (nil, let value?):
                let line = name + "=" + value
                let position = lines.firstIndex { Self.byName(line, $0) } ?? lines.endIndex
                lines.insert(line, at: position)
            case (nil, nil): break
            }
        }
    }

    public var names: [String] { lines.map { String(Self.name(of: $0)) } }

    /// Without `names` (and without `NAME_FILE` for each, when `withFiles`:
    /// a secret given as a file path is taken away with its value).
    public mutating func remove(_ names: some Sequence<String>, withFiles: Bool = false) {
        for name in names {
            self[name] = nil
            if withFiles { self[name + "_FILE"] = nil }
        }
    }

    public func removing(_ names: some Sequence<String>, withFiles: Bool = false) -> Environment {
        var copy = self
        copy.remove(names, withFiles: withFiles)
        return copy
    }

    /// Every value set by `overrides` replaces this one's.
    public mutating func merge(_ overrides: Environment) {
        for line in overrides.lines {
            let name = String(Self.name(of: line))
            self[name] = String(line.utf8.dropFirst(name.utf8.count + 1))!
        }
    }

    private func index(of name: String) -> Int? {
        let prefixLength = name.utf8.count
        return lines.firstIndex { line in
            line.utf8.count > prefixLength && line.utf8.starts(with: name.utf8)
                && line.utf8[line.utf8.index(line.utf8.startIndex, offsetBy: prefixLength)] == UInt8(ascii: "=")
        }
    }

    /// Byte order of the names: no Unicode comparison (whose first use
    /// costs a process ~180,000 instructions), and what `env` shows.
    private static func byName(_ first: String, _ second: String) -> Bool {
        name(of: first).utf8.lexicographicallyPrecedes(name(of: second).utf8)
    }

    private static func name(of line: String) -> Substring {
        guard let equals = line.utf8.firstIndex(of: UInt8(ascii: "=")) else { return line[...] }
        return line[..<equals]
    }
}
