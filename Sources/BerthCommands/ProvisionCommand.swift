import ArgumentParser
import BerthInit

/// `berth provision [--only STEP] [-v]`: the provisioning steps again, now,
/// without a command (after rotating a secret, say).
struct ProvisionCommand: Verb {
    static let configuration = CommandConfiguration(
        commandName: "provision",
        abstract: "Run the provisioning steps again (all, or one), then exit.",
        discussion: "Reads the same variables as berth's start. Exit 0 when no step failed. To run a program named provision under berth, use berth -- provision."
    )

    @Option(help: ArgumentHelp("Run only this step (others are reported as skipped).", valueName: "STEP"))
    var only: String?

    @Flag(name: .short, help: "More output; repeat for more.")
    var verbose: Int

    func perform() -> Int32 {
        runProvisioningOnce(only: only, verbosity: verbose + 1)
    }
}
