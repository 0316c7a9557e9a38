/// The part of TOML that service files use: `key = value` lines, `[table]`
/// headers, strings (basic and literal), integers, floats, booleans, arrays
/// (over several lines too) and inline tables; `#` comments. Written here
/// rather than pulled in (TOMLKit wraps toml++, C++ that PID 1 would carry)
/// because the subset is small and every error must name file and line.
public enum TOMLValue: Equatable, Sendable {
    case string(String)
    case integer(Int)
    case float(Double)
    case boolean(Bool)
    case array([TOMLValue])
    case table([String: TOMLValue])

    var typeName: String {
        switch self {
        case .string: "a string"
        case .integer: "an integer"
        case .float: "a number"
        case .boolean: "true or false"
        case .array: "an array"
        case .table: "a table"
        }
    }
}

/// A key's value and the line it was set on, for error messages.
public struct TOMLEntry: Equatable, Sendable {
    public let value: TOMLValue
    public let line: Int
}

public struct TOMLError: Error, Equatable, CustomStringConvertible {
    public let line: Int
    public let message: String
    public var description: String { "line \(line): \(message)" }
}

/// Top-level keys and tables, flattened to dotted names ("readiness.tcp").
public struct TOMLDocument: Sendable {
    public private(set) var entries: [String: TOMLEntry] = [:]
    public private(set) var order: [String] = []

    public static func parse(_ text: String) throws(TOMLError) -> TOMLDocument {
        var document = TOMLDocument()
        var parser = TOMLParser(bytes: Array(text.utf8))
        var table = ""
        while true {
            parser.skipBlankLines()
            guard let byte = parser.peek else { break }
            let line = parser.line
            if byte == UInt8(ascii: "[") {
                parser.advance()
                let name = try parser.key()
                guard parser.peek == UInt8(ascii: "]") else { throw parser.error("expected ']' after the table name") }
                parser.advance()
                try parser.endOfLine()
                guard !document.order.contains(where: { $0 == name || $0.hasPrefix(name + ".") }) || name.isEmpty else {
                    throw TOMLError(line: line, message: "table [\(name)] is defined twice")
                }
                table = name
                continue
            }
            let key = try parser.key()
            parser.skipSpaces()
            guard parser.peek == UInt8(ascii: "=") else { throw parser.error("expected '=' after \(key)") }
            parser.advance()
            let value = try parser.value(depth: 0)
            try parser.endOfLine()
            let full = table.isEmpty ? key : table + "." + key
            guard document.entries[full] == nil else { throw TOMLError(line: line, message: "\(full) is set twice") }
            document.entries[full] = TOMLEntry(value: value, line: line)
            document.order.append(full)
        }
        return document
    }
}

private struct TOMLParser {
    let bytes: [UInt8]
    var offset = 0
    var line = 1

    init(bytes: [UInt8]) { self.bytes = bytes }

    var peek: UInt8? { offset < bytes.count ? bytes[offset] : nil }

    func error(_ message: String) -> TOMLError { TOMLError(line: line, message: message) }

    mutating func advance() {
        if bytes[offset] == UInt8(ascii: "\n") { line += 1 }
        offset += 1
    }

    mutating func skipSpaces() {
        while let byte = peek, byte == 0x20 || byte == 0x09 { advance() }
    }

    mutating func skipComment() {
        if peek == UInt8(ascii: "#") { while let byte = peek, byte != 0x0A { advance() } }
    }

    mutating func skipBlankLines() {
        while true {
            skipSpaces()
            skipComment()
            guard let byte = peek, byte == 0x0A || byte == 0x0D else { return }
            advance()
        }
    }

    /// Inside arrays and inline tables newlines and comments are blank too.
    mutating func skipBlankInside() {
        skipBlankLines()
    }

    mutating func endOfLine() throws(TOMLError) {
        skipSpaces()
        skipComment()
        if peek == 0x0D { advance() }
        guard peek == nil || peek == 0x0A else { throw error("unexpected text after the value") }
        if peek != nil { advance() }
    }

    /// A bare key (letters, digits, '-', '_') or dotted bare keys.
    mutating func key() throws(TOMLError) -> String {
        skipSpaces()
        var parts: [String] = []
        while true {
            let start = offset
            while let byte = peek, (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-") {
                advance()
            }
            guard offset > start else { throw error("expected a key (letters, digits, '_' or '-')") }
            parts.append(String(decoding: bytes[start..<offset], as: UTF8.self))
            skipSpaces()
            guard peek == UInt8(ascii: ".") else { break }
            advance()
            skipSpaces()
        }
        return parts.joined(separator: ".")
    }

    mutating func value(depth: Int) throws(TOMLError) -> TOMLValue {
        guard depth < 16 else { throw error("nested too deeply") }
        skipSpaces()
        guard let byte = peek else { throw error("expected a value") }
        switch byte {
        case UInt8(ascii: "\""): return .string(try basicString())
        case UInt8(ascii: "'"): return .string(try literalString())
        case UInt8(ascii: "["): return try array(depth: depth)
        case UInt8(ascii: "{"): return try inlineTable(depth: depth)
        case UInt8(ascii: "t"), UInt8(ascii: "f"): return try boolean()
        default: return try number()
        }
    }

    mutating func basicString() throws(TOMLError) -> String {
        advance()
        var out: [UInt8] = []
        while true {
            guard let byte = peek, byte != 0x0A else { throw error("unterminated string") }
            advance()
            if byte == UInt8(ascii: "\"") { return String(decoding: out, as: UTF8.self) }
            if byte == UInt8(ascii: "\\") {
                guard let escaped = peek else { throw error("unterminated string") }
                advance()
                switch escaped {
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "\\"), UInt8(ascii: "\""): out.append(escaped)
                default: throw error("unknown escape \\\(Character(Unicode.Scalar(escaped)))")
                }
            } else {
                out.append(byte)
            }
        }
    }

    mutating func literalString() throws(TOMLError) -> String {
        advance()
        let start = offset
        while let byte = peek, byte != UInt8(ascii: "'") {
            guard byte != 0x0A else { throw error("unterminated string") }
            advance()
        }
        guard peek != nil else { throw error("unterminated string") }
        let text = String(decoding: bytes[start..<offset], as: UTF8.self)
        advance()
        return text
    }

    mutating func boolean() throws(TOMLError) -> TOMLValue {
        for (word, value) in [("true", true), ("false", false)] where bytes[offset...].starts(with: word.utf8) {
            for _ in word.utf8 { advance() }
            return .boolean(value)
        }
        throw error("expected a value (strings need quotes)")
    }

    mutating func number() throws(TOMLError) -> TOMLValue {
        let start = offset
        while let byte = peek, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "+")
            || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E") {
            advance()
        }
        let text = String(decoding: bytes[start..<offset], as: UTF8.self).filter { $0 != "_" }
        if let integer = Int(text) { return .integer(integer) }
        if let float = Double(text), text.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }) { return .float(float) }
        throw error(text.isEmpty ? "expected a value (strings need quotes)" : "'\(text)' is not a number")
    }

    mutating func array(depth: Int) throws(TOMLError) -> TOMLValue {
        advance()
        var items: [TOMLValue] = []
        while true {
            skipBlankInside()
            if peek == UInt8(ascii: "]") { advance(); return .array(items) }
            items.append(try value(depth: depth + 1))
            skipBlankInside()
            if peek == UInt8(ascii: ",") { advance(); continue }
            if peek == UInt8(ascii: "]") { advance(); return .array(items) }
            throw error("expected ',' or ']' in the array")
        }
    }

    mutating func inlineTable(depth: Int) throws(TOMLError) -> TOMLValue {
        advance()
        var members: [String: TOMLValue] = [:]
        skipSpaces()
        if peek == UInt8(ascii: "}") { advance(); return .table(members) }
        while true {
            let name = try key()
            skipSpaces()
            guard peek == UInt8(ascii: "=") else { throw error("expected '=' after \(name)") }
            advance()
            guard members[name] == nil else { throw error("\(name) is set twice") }
            members[name] = try value(depth: depth + 1)
            skipSpaces()
            if peek == UInt8(ascii: ",") { advance(); skipSpaces(); continue }
            if peek == UInt8(ascii: "}") { advance(); return .table(members) }
            throw error("expected ',' or '}' in the inline table")
        }
    }
}
