/// A setting that could not be read, with the variable (or file) named.
public struct SettingError: Error, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
