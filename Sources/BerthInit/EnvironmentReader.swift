import BerthCore

/// Reads BERTH_* variables strictly (with `Settings`' parsers, so
/// every variable parses alike): a value that does not parse is an error
/// naming the variable, never a silent default.
struct EnvironmentReader {
    let variable: (String) -> String?
    init(_ variable: @escaping (String) -> String?) { self.variable = variable }

    /// A non-empty value, or nil (as `Settings.value`).
    func value(_ name: String) -> String? {
        guard let value = variable(name), !value.isEmpty else { return nil }
        return value
    }

    func list(_ name: String) -> [String] { commaSeparated(value(name)) }

    func boolean(_ name: String) throws(UsageError) -> Bool? {
        guard let text = value(name) else { return nil }
        do {
            return try Settings.boolean(text, variable: name)
        } catch {
            throw UsageError(message: error.message)
        }
    }

    func integer(_ name: String, range: ClosedRange<Int>) throws(UsageError) -> Int? {
        guard let text = value(name) else { return nil }
        guard let number = Int(text), range.contains(number) else {
            throw UsageError(message: "\(name)='\(text)': expected a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return number
    }
}
