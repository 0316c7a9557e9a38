import BerthCore
import Glibc

/// The three ways berth behaves, chosen by the name it was invoked under
/// (symlink or argv[0]): `tini` and `dumb-init` get their drop-in
/// behaviour, anything else is berth.
public enum Face {
    case tini, dumbInit, native

    public init(invokedAs path: String) {
        switch invokedName(path) {
        case "tini", "tini-static": self = .tini
        case "dumb-init": self = .dumbInit
        default: self = .native
        }
    }
}

/// The init: runs its command under the face argv[0] names.
public func berthMain(arguments: [String]) -> Int32 {
    switch Face(invokedAs: arguments.first ?? "berth") {
    case .tini:
        return TiniFace.run(arguments: arguments, environment: currentEnvironment())
    case .dumbInit:
        return DumbInitFace.run(arguments: arguments, environment: currentEnvironment())
    case .native:
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
