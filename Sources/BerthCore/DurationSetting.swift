/// The one duration syntax of every setting (berth's variables, the
/// workspace supervisor's, service files): numbers with units — `500ms`,
/// `300s`, `5m`, `1h30m`, `7d`, `1.5h` — or a bare number, which means
/// seconds (`300`, `0.5`). The original images wrote
/// `SUPERVISOR_BACKUP_INTERVAL=300s`; berth's own variables took bare
/// seconds: both keep working, everywhere. nil when `text` is neither.
public func parseDuration(_ text: String) -> Duration? {
    var rest = Substring(text)
    guard !rest.isEmpty else { return nil }
    var total: Duration = .zero
    var sawUnit = false
    while !rest.isEmpty {
        let number = rest.prefix { ("0"..."9").contains($0) || $0 == "." }
        guard !number.isEmpty, number.count <= 12, let value = Double(number), value.isFinite else { return nil }
        rest = rest.dropFirst(number.count)
        let unit = rest.prefix { $0.isLetter }
        rest = rest.dropFirst(unit.count)
        let scale: Double
        switch unit {
        case "": 
            // A bare number is seconds, and only as the whole value.
            guard !sawUnit, rest.isEmpty else { return nil }
            scale = 1
        case "ms": scale = 0.001
        case "s": scale = 1
        case "m": scale = 60
        case "h": scale = 3600
        case "d": scale = 86_400
        default: return nil
        }
        sawUnit = true
        let seconds = value * scale
        guard seconds <= 366 * 86_400 else { return nil }
        total += .nanoseconds(Int64((seconds * 1e9).rounded()))
    }
    return total
}

extension Settings {
    /// A duration in the one syntax (`300s`, `5m`, `90`), within `range`;
    /// `fallback` when unset. The error names the variable.
    public func duration(_ name: String, default fallback: Duration,
                         in range: ClosedRange<Duration> = .zero...(.seconds(86_400))) throws(SettingError) -> Duration {
        guard let text = value(name) else { return fallback }
        return try Self.duration(text, variable: name, in: range)
    }

    /// `text` (the value of `variable`, or an option) as a duration within `range`.
    public static func duration(_ text: String, variable: String,
                                in range: ClosedRange<Duration> = .zero...(.seconds(86_400))) throws(SettingError) -> Duration {
        guard let parsed = parseDuration(text), range.contains(parsed) else {
            throw SettingError("\(variable)='\(text)': expected a duration from \(range.lowerBound.shortDescription) to \(range.upperBound.shortDescription), like 300s, 5m, 1h30m or 90 (seconds)")
        }
        return parsed
    }
}
