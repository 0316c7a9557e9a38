import BerthCore
import Glibc

/// Picks the face by the name berth was invoked under (symlink or argv[0]):
/// `tini` and `dumb-init` get their drop-in behaviour, anything else is berth.
public func berthMain(arguments: [String]) -> Int32 {
    switch invokedName(arguments.first ?? "berth") {
    case "tini", "tini-static":
        return TiniFace.run(arguments: arguments, environment: currentEnvironment())
    case "dumb-init":
        return DumbInitFace.run(arguments: arguments, environment: currentEnvironment())
    default:
        // Reads its variables one at a time (see environmentValue).
        return NativeFace.run(arguments: Array(arguments.dropFirst()))
    }
}

/// `basename(path)` without splitting the path into an array of parts
/// (tens of thousands of instructions at every start).
func invokedName(_ path: String) -> Substring {
    guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return path[...] }
    let name = path[path.utf8.index(after: slash)...]
    return name.isEmpty ? basename(path)[...] : name
}
