/// A setting that could not be read, with the variable (or file) named.
/// Control characters in the message (a value quoted back to the user may
/// hold a newline) are shown escaped, so one error stays one log line and a
/// value cannot forge a line of its own.
public struct SettingError: Error, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) {
        self.message = message.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f })
            ? Self.escapingControlCharacters(message) : message
    }
    public var description: String { message }

    static func escapingControlCharacters(_ text: String) -> String {
        var shown = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": shown += "\\n"
            case "\t": shown += "\\t"
            case "\r": shown += "\\r"
            case _ where scalar.value < 0x20 || scalar.value == 0x7f:
                shown += "\\u{" + String(scalar.value, radix: 16) + "}"
            default: shown.unicodeScalars.append(scalar)
            }
        }
        return shown
    }
}
