import BerthCore
import Glibc

/// A workspace's devcontainer.json as far as berth uses it: the five
/// life-cycle commands that run inside the container, `remoteEnv`, and the
/// names in `containerEnv`. containerEnv is applied when a container is
/// created, which is the job of whatever started berth, so berth only
/// reports those names as not applicable. Every other key of the spec
/// (image, features, forwardPorts, customizations...) belongs to the tool
/// that builds the container and is ignored.
public struct DevcontainerFile: Sendable {
    /// Where it was read from, for errors and logs.
    public let path: String
    /// The commands the file gives, in the spec's order. A key set to null,
    /// "" or {} gives none: templates ship such placeholders.
    public let commands: [(hook: LifecycleHook, command: LifecycleCommand)]
    /// remoteEnv in the file's order; a nil value unsets the variable.
    /// Values are kept as written: `${containerEnv:PATH}` and the like are
    /// for whoever applies them to substitute.
    public let remoteEnvironment: [(name: String, value: String?)]
    /// The names containerEnv sets, in the file's order.
    public let containerEnvironmentNames: [String]

    public func command(_ hook: LifecycleHook) -> LifecycleCommand? {
        commands.first { $0.hook == hook }?.command
    }

    /// Larger files are refused: a devcontainer.json is a few KiB, and the
    /// file is the user's to make as big as they like.
    public static let sizeLimit = 1 << 20
}

/// One life-cycle key of the spec, in the order the spec runs them.
public enum LifecycleHook: String, CaseIterable, Sendable {
    case onCreate = "onCreateCommand"
    case updateContent = "updateContentCommand"
    case postCreate = "postCreateCommand"
    case postStart = "postStartCommand"
    case postAttach = "postAttachCommand"

    /// The key in devcontainer.json.
    public var key: String { rawValue }

    /// How logs name it: `postCreate |`, and `postCreate:NAME |` for a
    /// member of the object form.
    public var logName: String { String(rawValue.dropLast("Command".count)) }

    public var rerun: RerunRule {
        switch self {
        case .onCreate, .updateContent, .postCreate: return .oncePerWorkspace
        case .postStart: return .everyContainerStart
        case .postAttach: return .everySSHSession
        }
    }
}

/// When a hook's command runs again.
public enum RerunRule: Equatable, Sendable {
    /// Once for the workspace, kept across container restarts and image
    /// updates; again when the command's `fingerprint` changes, so editing
    /// postCreateCommand takes effect without a new workspace.
    case oncePerWorkspace
    /// At every start of the container.
    case everyContainerStart
    /// At each new SSH session, berth's counterpart of an editor attaching.
    case everySSHSession

    /// As `berth status` says it.
    public var description: String {
        switch self {
        case .oncePerWorkspace: "once per workspace, again when the command changes"
        case .everyContainerStart: "every start"
        case .everySSHSession: "every SSH session"
        }
    }
}

/// A life-cycle command in one of the spec's three forms.
public indirect enum LifecycleCommand: Equatable, Sendable {
    /// Run by `/bin/sh -c`; may span lines (a multi-line script).
    case shell(String)
    /// A program and its arguments, no shell; never empty.
    case exec([String])
    /// Named commands run at the same time, in the file's key order. The
    /// parser gives members of the shell and exec forms only.
    case parallel([(name: String, command: LifecycleCommand)])

    public static func == (left: LifecycleCommand, right: LifecycleCommand) -> Bool {
        switch (left, right) {
        case let (.shell(a), .shell(b)): return a == b
        case let (.exec(a), .exec(b)): return a == b
        case let (.parallel(a), .parallel(b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.name == $1.name && $0.command == $1.command }
        default: return false
        }
    }

    /// The command as compact JSON in one canonical shape: a string for
    /// the shell form, an array for exec (so `"a b"` and `["a","b"]`
    /// differ), an object for parallel with its members sorted by name.
    /// Sorted because the members run at the same time: their order in
    /// the file means nothing to what runs, and moving one must not run
    /// onCreateCommand again.
    public var canonicalText: String {
        switch self {
        case .shell(let script):
            return JSON.quote(script)
        case .exec(let arguments):
            return "[" + arguments.map(JSON.quote).joined(separator: ",") + "]"
        case .parallel(let members):
            let sorted = members.sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
            return "{" + sorted.map { JSON.quote($0.name) + ":" + $0.command.canonicalText }.joined(separator: ",") + "}"
        }
    }

    /// FNV-1a (64 bits) of `canonicalText`, as 16 hex digits: what is kept
    /// to tell whether a once-per-workspace command changed. Not a
    /// security hash and it need not be one: whoever can edit the file can
    /// run any command anyway, and a collision would only skip one rerun.
    /// The value is stored, so changing the hash or the canonical text
    /// reruns every workspace's once-per-workspace commands once.
    public var fingerprint: String { inputFingerprint(canonicalText) }
}

/// A devcontainer.json that cannot be used, naming the file, the line when
/// known and the key: "/workspace/.devcontainer/devcontainer.json: line 7:
/// postCreateCommand: expected a string, an array of strings or an object".
public struct DevcontainerError: Error, Equatable, CustomStringConvertible {
    public let file: String
    public let line: Int?
    /// The key, members joined by "." (`remoteEnv.PATH`).
    public let key: String?
    public let problem: String

    public init(file: String, line: Int? = nil, key: String? = nil, problem: String) {
        self.file = file
        self.line = line
        self.key = key
        self.problem = problem
    }

    /// One log line: the path comes from a variable and a problem may
    /// quote a name, so control and format characters show escaped.
    public var description: String {
        var text = file + ": "
        if let line { text += "line \(line): " }
        if let key { text += key + ": " }
        return escapingInvisibles(text + problem)
    }
}

/// One place a devcontainer.json may be.
public struct DevcontainerCandidate: Equatable, Sendable {
    public let path: String
    /// The variable that named it: then its absence is an error, not a
    /// reason to look at the next place.
    public let namedBy: String?

    public init(path: String, namedBy: String? = nil) {
        self.path = path
        self.namedBy = namedBy
    }
}

extension DevcontainerFile {
    /// Where to look, in order: the file BERTH_DEVCONTAINER names (relative
    /// to the workspace) and nothing else when it is set, else the two
    /// places the spec gives.
    public static func candidates(workspaceDirectory: String, named: String?) -> [DevcontainerCandidate] {
        if let named, !named.isEmpty {
            return [DevcontainerCandidate(path: joined(workspaceDirectory, named), namedBy: "BERTH_DEVCONTAINER")]
        }
        return [
            DevcontainerCandidate(path: joined(workspaceDirectory, ".devcontainer/devcontainer.json")),
            DevcontainerCandidate(path: joined(workspaceDirectory, ".devcontainer.json")),
        ]
    }

    /// The candidates of WORKSPACE_DIR (default /workspace) and BERTH_DEVCONTAINER.
    public static func candidates(_ settings: Settings) -> [DevcontainerCandidate] {
        candidates(workspaceDirectory: settings.value("WORKSPACE_DIR", default: "/workspace"), named: settings.value("BERTH_DEVCONTAINER"))
    }

    /// The first candidate that exists, read whole; nil when none does.
    /// Opened without blocking and refused unless a regular file: the
    /// workspace is the user's, and a FIFO there must not stall a start.
    /// Which user reads it is the caller's choice.
    public static func readFirst(of candidates: [DevcontainerCandidate], sizeLimit: Int = sizeLimit) throws(DevcontainerError) -> (path: String, text: String)? {
        for candidate in candidates {
            let path = candidate.path
            let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
            guard fd >= 0 else {
                let code = errno
                if code == ENOENT || code == ENOTDIR {
                    if let variable = candidate.namedBy { throw DevcontainerError(file: path, problem: "no such file (\(variable) names it)") }
                    continue
                }
                throw DevcontainerError(file: path, problem: "cannot read: \(String(cString: strerror(code)))")
            }
            defer { close(fd) }
            var info = stat()
            guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
                throw DevcontainerError(file: path, problem: "not a regular file")
            }
            guard let bytes = readAll(fd, limit: sizeLimit + 1) else {
                throw DevcontainerError(file: path, problem: "cannot read: \(String(cString: strerror(errno)))")
            }
            guard bytes.count <= sizeLimit else {
                throw DevcontainerError(file: path, problem: "larger than \(sizeLimit) bytes; a devcontainer.json is a few KiB")
            }
            return (path, String(decoding: bytes, as: UTF8.self))
        }
        return nil
    }

    /// The first candidate that exists, parsed; nil when none does.
    public static func load(firstOf candidates: [DevcontainerCandidate]) throws(DevcontainerError) -> DevcontainerFile? {
        guard let found = try readFirst(of: candidates) else { return nil }
        return try parse(found.text, path: found.path)
    }

    /// `text` (JSONC: comments and trailing commas, as the spec allows)
    /// read from `path`. A key berth reads that is given twice is an error:
    /// JSON readers differ on which of the two counts.
    public static func parse(_ text: String, path: String) throws(DevcontainerError) -> DevcontainerFile {
        // Editors on Windows start UTF-8 files with a byte order mark.
        let text = text.hasPrefix("\u{FEFF}") ? String(text.unicodeScalars.dropFirst()) : text
        let root: JSON
        do {
            root = try JSON.parse(text)
        } catch {
            throw DevcontainerError(file: path, line: error.line, problem: error.problem)
        }
        guard case .object(let members) = root else {
            throw DevcontainerError(file: path, problem: "expected a JSON object at the top")
        }
        let source = Source(path: path, text: text)
        let wanted = Set(LifecycleHook.allCases.map(\.key) + ["remoteEnv", "containerEnv"])
        try source.refuseDuplicates(members.map(\.key).filter(wanted.contains), in: [])

        var commands: [(hook: LifecycleHook, command: LifecycleCommand)] = []
        for hook in LifecycleHook.allCases {
            guard let value = root[hook.key], let command = try source.command(value, at: [hook.key]) else { continue }
            commands.append((hook, command))
        }
        return DevcontainerFile(path: path, commands: commands,
                                remoteEnvironment: try source.remoteEnvironment(root["remoteEnv"]),
                                containerEnvironmentNames: try source.containerEnvironmentNames(root["containerEnv"]))
    }

    /// `relative` inside `directory`, or `relative` itself when absolute.
    static func joined(_ directory: String, _ relative: String) -> String {
        if relative.hasPrefix("/") { return relative }
        var relative = Substring(relative)
        while relative.hasPrefix("./") { relative = relative.dropFirst(2).drop { $0 == "/" } }
        return (directory.hasSuffix("/") ? directory : directory + "/") + relative
    }
}

/// The file being parsed, for errors that name its line.
private struct Source {
    let path: String
    let text: String

    func error(at keyPath: [String], _ problem: String) -> DevcontainerError {
        DevcontainerError(file: path, line: KeyLine.find(keyPath, in: text), key: keyPath.joined(separator: "."), problem: problem)
    }

    func refuseDuplicates(_ keys: [String], in keyPath: [String]) throws(DevcontainerError) {
        var seen = Set<String>()
        for key in keys where !seen.insert(key).inserted {
            throw error(at: keyPath + [key], "given more than once")
        }
    }

    /// A hook's value (top level) or a member of its object form.
    func command(_ value: JSON, at keyPath: [String]) throws(DevcontainerError) -> LifecycleCommand? {
        let isMember = keyPath.count > 1
        switch value {
        case .null where !isMember:
            return nil
        case .string(let script):
            if script.isEmpty {
                if isMember { throw error(at: keyPath, "an empty command") }
                return nil
            }
            try refuseNUL(script, at: keyPath)
            return .shell(script)
        case .array(let items):
            if items.isEmpty { throw error(at: keyPath, "an empty array: give the program and its arguments, or remove the key") }
            var arguments: [String] = []
            for (index, item) in items.enumerated() {
                guard let argument = item.stringValue else {
                    throw error(at: keyPath, "expected an array of strings (item \(index + 1) is not a string)")
                }
                try refuseNUL(argument, at: keyPath)
                arguments.append(argument)
            }
            if arguments[0].isEmpty { throw error(at: keyPath, "the program (the array's first item) is empty") }
            return .exec(arguments)
        case .object(let members) where !isMember:
            try refuseDuplicates(members.map(\.key), in: keyPath)
            var named: [(name: String, command: LifecycleCommand)] = []
            for member in members {
                if let problem = Self.nameProblem(member.key) {
                    throw error(at: keyPath + [member.key], "the name \(JSON.quote(member.key)) \(problem); names show in logs as \(logName(keyPath)):NAME")
                }
                if case .object = member.value {
                    throw error(at: keyPath + [member.key], "a command of the object form is a string or an array of strings, not another object")
                }
                if let command = try command(member.value, at: keyPath + [member.key]) { named.append((member.key, command)) }
            }
            return named.isEmpty ? nil : .parallel(named)
        default:
            throw error(at: keyPath, isMember ? "expected a string or an array of strings" : "expected a string, an array of strings or an object")
        }
    }

    func logName(_ keyPath: [String]) -> String {
        LifecycleHook(rawValue: keyPath[0])?.logName ?? keyPath[0]
    }

    /// No command line can hold a NUL byte (`\u0000` in JSON).
    func refuseNUL(_ text: String, at keyPath: [String]) throws(DevcontainerError) {
        if text.utf8.contains(0) { throw error(at: keyPath, "contains a NUL character, which no command can hold") }
    }

    /// Why a member's name cannot be shown as one word of a log prefix.
    static func nameProblem(_ name: String) -> String? {
        if name.isEmpty { return "is empty" }
        if name.unicodeScalars.contains(where: isInvisible) { return "has a control character" }
        if name.contains(where: \.isWhitespace) { return "has a space" }
        return nil
    }

    func remoteEnvironment(_ value: JSON?) throws(DevcontainerError) -> [(name: String, value: String?)] {
        guard let value, value != .null else { return [] }
        guard case .object(let members) = value else {
            throw error(at: ["remoteEnv"], "expected an object of NAME: value (a string, or null to unset)")
        }
        try refuseDuplicates(members.map(\.key), in: ["remoteEnv"])
        var variables: [(name: String, value: String?)] = []
        for member in members {
            try checkVariableName(member.key, in: "remoteEnv")
            switch member.value {
            case .null:
                variables.append((member.key, nil))
            case .string(let text):
                if text.utf8.contains(0) { throw error(at: ["remoteEnv", member.key], "contains a NUL character, which no environment can hold") }
                variables.append((member.key, text))
            default:
                throw error(at: ["remoteEnv", member.key], "expected a string, or null to unset the variable")
            }
        }
        return variables
    }

    func containerEnvironmentNames(_ value: JSON?) throws(DevcontainerError) -> [String] {
        guard let value, value != .null else { return [] }
        guard case .object(let members) = value else {
            throw error(at: ["containerEnv"], "expected an object of NAME: value")
        }
        try refuseDuplicates(members.map(\.key), in: ["containerEnv"])
        for member in members { try checkVariableName(member.key, in: "containerEnv") }
        return members.map(\.key)
    }

    /// A name an environment can hold, and a log line can show.
    func checkVariableName(_ name: String, in key: String) throws(DevcontainerError) {
        if name.isEmpty || name.contains("=") || name.unicodeScalars.contains(where: { $0 == "\0" || isInvisible($0) }) {
            throw error(at: [key], "\(JSON.quote(name)) is not a variable name (empty, or holding '=' or a control character)")
        }
    }
}

/// Finds the line of a key in JSONC text that parsed: the line of the key's
/// last occurrence at `keyPath` (the one JSON's subscript returns), found
/// by walking the text with the nesting tracked, so the same words in a
/// comment, a string or another object do not count. Only errors need it.
private enum KeyLine {
    struct Level {
        var isObject: Bool
        var expectingKey: Bool
        /// The key of the member being read; "[]" in an array.
        var key: String
    }

    static func find(_ keyPath: [String], in text: String) -> Int? {
        let bytes = Array(text.utf8)
        var offset = 0
        var line = 1
        var levels: [Level] = []
        var found: Int?
        while offset < bytes.count {
            let byte = bytes[offset]
            switch byte {
            case UInt8(ascii: "\n"):
                line += 1
                offset += 1
            case UInt8(ascii: "/") where offset + 1 < bytes.count && bytes[offset + 1] == UInt8(ascii: "/"):
                while offset < bytes.count && bytes[offset] != UInt8(ascii: "\n") { offset += 1 }
            case UInt8(ascii: "/") where offset + 1 < bytes.count && bytes[offset + 1] == UInt8(ascii: "*"):
                offset += 2
                while offset < bytes.count && !(bytes[offset] == UInt8(ascii: "*") && offset + 1 < bytes.count && bytes[offset + 1] == UInt8(ascii: "/")) {
                    if bytes[offset] == UInt8(ascii: "\n") { line += 1 }
                    offset += 1
                }
                offset = min(offset + 2, bytes.count)
            case UInt8(ascii: "\""):
                // A string that parsed holds no raw newline.
                let start = offset
                offset += 1
                while offset < bytes.count && bytes[offset] != UInt8(ascii: "\"") {
                    offset += bytes[offset] == UInt8(ascii: "\\") ? 2 : 1
                }
                offset = min(offset + 1, bytes.count)
                guard let last = levels.indices.last, levels[last].isObject, levels[last].expectingKey else { continue }
                let key = (try? JSON.parse(String(decoding: bytes[start..<offset], as: UTF8.self)))?.stringValue ?? ""
                if levels.dropLast().map(\.key) + [key] == keyPath { found = line }
                levels[last].key = key
                levels[last].expectingKey = false
            case UInt8(ascii: "{"):
                levels.append(Level(isObject: true, expectingKey: true, key: ""))
                offset += 1
            case UInt8(ascii: "["):
                levels.append(Level(isObject: false, expectingKey: false, key: "[]"))
                offset += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                _ = levels.popLast()
                offset += 1
            case UInt8(ascii: ","):
                if let last = levels.indices.last, levels[last].isObject { levels[last].expectingKey = true }
                offset += 1
            default:
                offset += 1
            }
        }
        return found
    }
}

/// C0 and C1 control characters, DEL, and format characters (zero-width
/// spaces, bidirectional overrides) that would make a log line read as
/// something other than what it holds.
private func isInvisible(_ scalar: Unicode.Scalar) -> Bool {
    scalar.value < 0x20 || (0x7f...0x9f).contains(scalar.value) || scalar.properties.generalCategory == .format
}

private func escapingInvisibles(_ text: String) -> String {
    guard text.unicodeScalars.contains(where: isInvisible) else { return text }
    var shown = ""
    for scalar in text.unicodeScalars {
        if isInvisible(scalar) {
            shown += "\\u{" + String(scalar.value, radix: 16) + "}"
        } else {
            shown.unicodeScalars.append(scalar)
        }
    }
    return shown
}
