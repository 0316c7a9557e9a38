import Glibc

/// The container environment as settings are read from it: plain values, and
/// secrets given either as NAME or as NAME_FILE (the Docker and Kubernetes
/// secrets convention), never both.
public struct Settings: Sendable {
    public let environment: Environment
    /// Secret files larger than this are refused (a key or token is small).
    public var secretFileLimit = 1 << 20

    public init(_ environment: Environment) {
        self.environment = environment
    }

    public init(environment: [String: String]) {
        self.environment = Environment(environment)
    }

    /// A non-empty value, or nil.
    public func value(_ name: String) -> String? {
        guard let value = environment[name], !value.isEmpty else { return nil }
        return value
    }

    public func value(_ name: String, default fallback: String) -> String {
        value(name) ?? fallback
    }

    /// A comma-separated list.
    public func list(_ name: String) -> [String] {
        commaSeparated(value(name))
    }

    public func boolean(_ name: String, default fallback: Bool) throws(SettingError) -> Bool {
        guard let text = value(name) else { return fallback }
        return try Self.boolean(text, variable: name)
    }

    /// `text` (the value of `variable`) as a boolean.
    public static func boolean(_ text: String, variable: String) throws(SettingError) -> Bool {
        switch text.lowercased() {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default: throw SettingError("\(variable)='\(text)': expected 1/0, true/false, yes/no or on/off")
        }
    }

    /// A TCP port, 1 to 65535.
    public func port(_ name: String, default fallback: Int) throws(SettingError) -> Int {
        guard let text = value(name) else { return fallback }
        guard let port = Int(text), (1...65535).contains(port) else {
            throw SettingError("\(name)='\(text)': expected a port number from 1 to 65535")
        }
        return port
    }

    /// HOST:PORT (a name or address of letters, digits, `.-:[]`, and a
    /// port 1 to 65535), as code-server's bind address is written.
    public func hostAndPort(_ name: String, default fallback: String) throws(SettingError) -> (text: String, port: Int) {
        let text = value(name, default: fallback)
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port),
              !text[..<colon].isEmpty, text[..<colon].allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || ".-:[]".contains($0)) }) else {
            throw SettingError("\(name)='\(text)': expected HOST:PORT, like \(fallback)")
        }
        return (text, port)
    }

    /// NAME, or the contents of the file NAME_FILE names. Trailing newlines
    /// of a file are dropped (editors and `echo` add them).
    public func secret(_ name: String) throws(SettingError) -> Secret? {
        let direct = value(name)
        let file = value(name + "_FILE")
        if direct != nil && file != nil {
            throw SettingError("\(name) and \(name)_FILE are both set: set one of them")
        }
        if let direct { return Secret(Array(direct.utf8)) }
        guard let file else { return nil }
        return try secret(fromFile: file, variable: name + "_FILE")
    }

    /// A secret file's contents, trailing newlines dropped; errors name
    /// `variable` (the setting that gave the path).
    public func secret(fromFile file: String, variable: String) throws(SettingError) -> Secret {
        var bytes = try readSecretFile(file, variable: variable)
        while let last = bytes.last, last == UInt8(ascii: "\n") || last == UInt8(ascii: "\r") { bytes.removeLast() }
        guard !bytes.isEmpty else { throw SettingError("\(variable)=\(file): the file is empty") }
        return Secret(bytes)
    }

    /// Whether a setting was given at all (either form), for skip reasons.
    public func isSet(_ name: String) -> Bool {
        value(name) != nil || value(name + "_FILE") != nil
    }

    private func readSecretFile(_ path: String, variable: String) throws(SettingError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw SettingError("\(variable)=\(path): cannot read: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        guard let bytes = readAll(fd, limit: secretFileLimit + 1) else {
            throw SettingError("\(variable)=\(path): cannot read: \(String(cString: strerror(errno)))")
        }
        guard bytes.count <= secretFileLimit else {
            throw SettingError("\(variable)=\(path): larger than \(secretFileLimit) bytes, not a secret")
        }
        return bytes
    }
}
