import BerthCore
import Glibc

/// Picks the face by the name berth was invoked under (symlink or argv[0]):
/// `tini` and `dumb-init` get their drop-in behaviour, anything else is berth.
public func berthMain(arguments: [String]) -> Int32 {
    var environment: [String: String] = [:]
    var cursor = environ
    while let entry = cursor.pointee {
        let pair = String(cString: entry)
        if let equals = pair.firstIndex(of: "=") {
            environment[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
        }
        cursor += 1
    }
    switch basename(arguments.first ?? "berth") {
    case "tini", "tini-static":
        return TiniFace.run(arguments: arguments, environment: environment)
    case "dumb-init":
        return DumbInitFace.run(arguments: arguments, environment: environment)
    default:
        return NativeFace.run(arguments: Array(arguments.dropFirst()), environment: environment)
    }
}
