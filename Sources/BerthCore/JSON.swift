/// The little JSON berth reads and writes: GitHub's answers, token endpoint
/// answers, and the settings files of code-server and the AI CLIs. Those
/// settings files are JSONC (comments, trailing commas), so the reader
/// accepts both; objects keep their key order so a rewrite reads the same.
public indirect enum JSON: Equatable, Sendable {
    case null
    case bool(Bool)
    /// The number's text as written, so a rewrite never reformats it.
    case number(String)
    case string(String)
    case array([JSON])
    case object([(key: String, value: JSON)])

    public static func == (left: JSON, right: JSON) -> Bool {
        switch (left, right) {
        case (.null, .null): return true
        case let (.bool(a), .bool(b)): return a == b
        case let (.number(a), .number(b)): return a == b
        case let (.string(a), .string(b)): return a == b
        case let (.array(a), .array(b)): return a == b
        case let (.object(a), .object(b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        default: return false
        }
    }

    public subscript(key: String) -> JSON? {
        guard case .object(let members) = self else { return nil }
        return members.last { $0.key == key }?.value
    }

    public var stringValue: String? {
        if case .string(let text) = self { return text }
        return nil
    }

    public var intValue: Int? {
        if case .number(let text) = self { return Int(text) }
        return nil
    }

    /// The error names the line: "line 3: expected ',' or '}'".
    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public let line: Int
        public let problem: String
        public var description: String { "line \(line): \(problem)" }
    }

    public static func parse(_ text: String) throws(ParseError) -> JSON {
        var reader = Reader(bytes: Array(text.utf8))
        let value = try reader.value(depth: 0)
        reader.skipBlank()
        guard reader.atEnd else { throw reader.error("unexpected text after the value") }
        return value
    }

    /// Where the top-level object's `{` is (a byte offset), for edits that
    /// add keys without rewriting the rest of a user's file.
    public static func openingBraceOffset(_ text: String) -> Int? {
        var reader = Reader(bytes: Array(text.utf8))
        reader.skipBlank()
        return reader.peek == UInt8(ascii: "{") ? reader.offset : nil
    }

    /// Two-space indented text, the way editors format settings files.
    public func rendered(indent: String = "") -> String {
        switch self {
        case .null: return "null"
        case .bool(let value): return value ? "true" : "false"
        case .number(let text): return text
        case .string(let text): return JSON.quote(text)
        case .array(let items):
            if items.isEmpty { return "[]" }
            let inner = indent + "  "
            return "[\n" + items.map { inner + $0.rendered(indent: inner) }.joined(separator: ",\n") + "\n\(indent)]"
        case .object(let members):
            if members.isEmpty { return "{}" }
            let inner = indent + "  "
            return "{\n" + members.map { inner + JSON.quote($0.key) + ": " + $0.value.rendered(indent: inner) }.joined(separator: ",\n") + "\n\(indent)}"
        }
    }

    public static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

private struct Reader {
    let bytes: [UInt8]
    var offset = 0
    var line = 1

    init(bytes: [UInt8]) { self.bytes = bytes }

    var atEnd: Bool { offset >= bytes.count }
    var peek: UInt8? { atEnd ? nil : bytes[offset] }

    func error(_ problem: String) -> JSON.ParseError { JSON.ParseError(line: line, problem: problem) }

    mutating func advance() {
        if bytes[offset] == UInt8(ascii: "\n") { line += 1 }
        offset += 1
    }

    /// Whitespace and JSONC comments.
    mutating func skipBlank() {
        while let byte = peek {
            if byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D {
                advance()
            } else if byte == UInt8(ascii: "/"), offset + 1 < bytes.count, bytes[offset + 1] == UInt8(ascii: "/") {
                while let next = peek, next != 0x0A { advance() }
            } else if byte == UInt8(ascii: "/"), offset + 1 < bytes.count, bytes[offset + 1] == UInt8(ascii: "*") {
                advance(); advance()
                while !atEnd, !(bytes[offset] == UInt8(ascii: "*") && offset + 1 < bytes.count && bytes[offset + 1] == UInt8(ascii: "/")) { advance() }
                if !atEnd { advance(); advance() }
            } else {
                return
            }
        }
    }

    mutating func expect(_ literal: String) throws(JSON.ParseError) {
        for byte in literal.utf8 {
            guard peek == byte else { throw error("expected '\(literal)'") }
            advance()
        }
    }

    mutating func value(depth: Int) throws(JSON.ParseError) -> JSON {
        guard depth < 64 else { throw error("nested more than 64 levels deep") }
        skipBlank()
        guard let byte = peek else { throw error("unexpected end of the text") }
        switch byte {
        case UInt8(ascii: "{"): return try object(depth: depth)
        case UInt8(ascii: "["): return try array(depth: depth)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try expect("true"); return .bool(true)
        case UInt8(ascii: "f"): try expect("false"); return .bool(false)
        case UInt8(ascii: "n"): try expect("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(number())
        default: throw error("unexpected character '\(Character(Unicode.Scalar(byte)))'")
        }
    }

    mutating func number() -> String {
        let start = offset
        while let byte = peek, byte == UInt8(ascii: "-") || byte == UInt8(ascii: "+") || byte == UInt8(ascii: ".")
            || byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) {
            advance()
        }
        return String(decoding: bytes[start..<offset], as: UTF8.self)
    }

    mutating func string() throws(JSON.ParseError) -> String {
        advance()
        var out: [UInt8] = []
        while true {
            guard let byte = peek else { throw error("unterminated string") }
            advance()
            switch byte {
            case UInt8(ascii: "\""):
                return String(decoding: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard let escaped = peek else { throw error("unterminated string") }
                advance()
                switch escaped {
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "u"):
                    var code: UInt32 = 0
                    for _ in 0..<4 {
                        guard let digit = peek, let value = hexValue(digit) else { throw error("bad \\u escape") }
                        code = code * 16 + value
                        advance()
                    }
                    // A surrogate pair's halves are kept as U+FFFD: berth
                    // never needs such characters, only to not choke on them.
                    out.append(contentsOf: Array(String(Unicode.Scalar(code).map(Character.init) ?? "\u{FFFD}").utf8))
                default: out.append(escaped)
                }
            case 0..<0x20:
                throw error("control character in a string")
            default:
                out.append(byte)
            }
        }
    }

    func hexValue(_ byte: UInt8) -> UInt32? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt32(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt32(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt32(byte - UInt8(ascii: "A") + 10)
        default: return nil
        }
    }

    mutating func array(depth: Int) throws(JSON.ParseError) -> JSON {
        advance()
        var items: [JSON] = []
        while true {
            skipBlank()
            if peek == UInt8(ascii: "]") { advance(); return .array(items) }
            items.append(try value(depth: depth + 1))
            skipBlank()
            if peek == UInt8(ascii: ",") { advance(); continue }
            if peek == UInt8(ascii: "]") { advance(); return .array(items) }
            throw error("expected ',' or ']'")
        }
    }

    mutating func object(depth: Int) throws(JSON.ParseError) -> JSON {
        advance()
        var members: [(key: String, value: JSON)] = []
        while true {
            skipBlank()
            if peek == UInt8(ascii: "}") { advance(); return .object(members) }
            guard peek == UInt8(ascii: "\"") else { throw error("expected a key in double quotes or '}'") }
            let key = try string()
            skipBlank()
            guard peek == UInt8(ascii: ":") else { throw error("expected ':' after \"\(key)\"") }
            advance()
            members.append((key, try value(depth: depth + 1)))
            skipBlank()
            if peek == UInt8(ascii: ",") { advance(); continue }
            if peek == UInt8(ascii: "}") { advance(); return .object(members) }
            throw error("expected ',' or '}'")
        }
    }
}

extension JSON {
    /// `text` (a settings file, maybe JSONC with the user's comments) with
    /// each of `defaults` added when its key is absent: inserted right after
    /// the opening brace, so the user's text, comments and values stay as
    /// they are. nil when every key is already there. A file that is not a
    /// JSON object is an error, and is left alone by the caller.
    public static func addingMissingKeys(_ defaults: [(key: String, value: JSON)], to text: String?) throws(ParseError) -> String? {
        guard let text, !text.allSatisfy({ $0.isWhitespace }) else {
            return JSON.object(defaults).rendered() + "\n"
        }
        let parsed = try JSON.parse(text)
        guard case .object(let members) = parsed, let brace = openingBraceOffset(text) else {
            throw ParseError(line: 1, problem: "not a JSON object")
        }
        let missing = defaults.filter { wanted in !members.contains { $0.key == wanted.key } }
        if missing.isEmpty { return nil }
        let lines = missing.map { "  " + quote($0.key) + ": " + $0.value.rendered(indent: "  ") }
        let insertion = members.isEmpty ? "\n" + lines.joined(separator: ",\n") + "\n" : "\n" + lines.map { $0 + "," }.joined(separator: "\n")
        var bytes = Array(text.utf8)
        bytes.insert(contentsOf: Array(insertion.utf8), at: brace + 1)
        return String(decoding: bytes, as: UTF8.self)
    }
}
