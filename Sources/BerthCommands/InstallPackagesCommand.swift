import ArgumentParser
import BerthCore
import BerthPlugins

/// `berth install-packages NAME...`: what BERTH_SUDO=packages lets the
/// workspace user run through sudo. The arguments are taken raw, options
/// and `--` included, so that PackageInstall alone decides what is a
/// package name; only a lone `--help` or `-h` asks for help.
struct InstallPackagesCommand: Verb {
    static let configuration = CommandConfiguration(
        commandName: PackageInstall.verb,
        abstract: "Install Debian packages by name with apt-get, as root (sudo, BERTH_SUDO=packages).",
        discussion: """
        Only package names (a-z 0-9 + - ., optionally :ARCH), at most 32: no apt-get \
        options, files, versions or releases. apt-get install runs with a fixed \
        environment in / and never removes a package; apt-get update runs first \
        when the package lists are missing or a day old.
        """
    )

    @Argument(parsing: .captureForPassthrough, help: "Debian package names.")
    var names: [String] = []

    func perform() -> Int32 {
        if names == ["--help"] || names == ["-h"] {
            StandardOutput.write(BerthVerbs.helpMessage(for: Self.self) + "\n")
            return 0
        }
        return PackageInstall.runCommand(names)
    }
}
