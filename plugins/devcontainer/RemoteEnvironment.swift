import BerthCore
import BerthProvisioning
import Glibc

/// devcontainer.json's remoteEnv for the workspace user's sessions: a file
/// of `export NAME='value'` lines (`unset NAME` for a null) in the home,
/// loaded by a marked block at the top of ~/.profile and ~/.bashrc, as the
/// AI keys are. Written by the hook runner, which is the user: these are
/// the user's own files. `${containerEnv:NAME}` and `${localEnv:NAME}`
/// take the value of NAME in the container's environment (there is no
/// other "local" machine here); other `${...}` stay as written.
enum RemoteEnvironment {
    static let relativePath = ".config/berth/remote-env.sh"
    static let loaderBlock = MarkedBlock(begin: "# BEGIN berth: devcontainer.json remoteEnv (replaced at every start)", placement: .top)

    static func install(_ variables: [(name: String, value: String?)], home: String, from file: String) {
        let path = home + "/" + relativePath
        let loader = variables.isEmpty ? [] : [". \"$HOME/\(relativePath)\" 2>/dev/null || true"]
        do {
            if variables.isEmpty {
                unlink(path)
            } else {
                try AtomicFile.ensureDirectory(home + "/.config", mode: 0o755)
                try AtomicFile.ensureDirectory(home + "/.config/berth", mode: 0o700)
                let lines = ["# remoteEnv of \(file), written by berth at each start"] + variables.map { name, value in
                    value.map { "export \(name)=\(shellQuoted(substitute($0)))" } ?? "unset \(name)"
                }
                _ = try AtomicFile.write(Array((lines.joined(separator: "\n") + "\n").utf8), to: path, mode: 0o644)
            }
            for profile in [".profile", ".bashrc"] {
                let existing = readTextFile(home + "/" + profile)
                guard existing != nil || !loader.isEmpty else { continue }
                let updated = loaderBlock.apply(loader, to: existing)
                if updated != existing { _ = try AtomicFile.write(Array(updated.utf8), to: home + "/" + profile, mode: 0o644) }
            }
        } catch {
            HookRunner.say("remoteEnv: cannot write \(path) or its loader: \(error)")
        }
    }

    /// `${containerEnv:NAME}` / `${localEnv:NAME}` (with `:default`).
    static func substitute(_ value: String) -> String {
        var result = ""
        var rest = Substring(value)
        while let dollar = rest.indices.first(where: { rest[$0...].hasPrefix("${") }),
              let close = rest[dollar...].firstIndex(of: "}") {
            result += rest[..<dollar]
            let inner = rest[rest.index(dollar, offsetBy: 2)..<close]
            let parts = inner.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
            if parts.count >= 2, parts[0] == "containerEnv" || parts[0] == "localEnv" {
                result += getenv(parts[1]).map { String(cString: $0) } ?? (parts.count == 3 ? parts[2] : "")
            } else {
                result += rest[dollar...close]
            }
            rest = rest[rest.index(after: close)...]
        }
        return result + rest
    }

    /// In single quotes, each ' as '\'' : nothing in it is expanded.
    static func shellQuoted(_ value: String) -> String {
        "'" + value.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "'\\''") + "'"
    }
}
