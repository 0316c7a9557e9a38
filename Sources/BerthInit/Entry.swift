import BerthCore
import Glibc

/// Picks the face by the name berth was invoked under (symlink or argv[0]):
/// `tini` and `dumb-init` get their drop-in behaviour, anything else is berth.
public func berthMain(arguments: [String]) -> Int32 {
    let environment = currentEnvironment()
    switch basename(arguments.first ?? "berth") {
    case "tini", "tini-static":
        return TiniFace.run(arguments: arguments, environment: environment)
    case "dumb-init":
        return DumbInitFace.run(arguments: arguments, environment: environment)
    default:
        return NativeFace.run(arguments: Array(arguments.dropFirst()), environment: environment)
    }
}
