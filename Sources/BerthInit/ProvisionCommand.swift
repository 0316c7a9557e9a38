import ArgumentParser
import BerthCore
import BerthProvisioning
import Glibc

/// `berth provision [--only STEP]`: runs provisioning again, now, without a
/// command (after rotating a secret, say). Exit 0 when no step failed.
struct ProvisionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "berth provision",
        abstract: "Run the provisioning steps again (all, or one), then exit.",
        discussion: "Reads the same variables as berth's start. To run a program named provision under berth, use `berth -- provision`."
    )

    @Option(help: ArgumentHelp("Run only this step (others are reported as skipped).", valueName: "STEP"))
    var only: String?

    @Flag(name: .short, help: "More output; repeat for more.")
    var verbose: Int

    static func run(arguments: [String], environment: [String: String]) -> Int32 {
        let command: ProvisionCommand
        do {
            command = try ProvisionCommand.parse(arguments)
        } catch {
            if ProvisionCommand.exitCode(for: error) == .success {
                StandardOutput.write(ProvisionCommand.fullMessage(for: error) + "\n")
                return 0
            }
            StandardError.write("berth provision: \(ProvisionCommand.message(for: error))\n")
            return 2
        }
        var failed = false
        let plan: (any InitPolicy.Preparation)?
        do {
            let configuration = try Configuration.read(NativeOptions(), variable: { environment[$0] }, inherited: { Environment(environment) },
                                                       readsEnvironment: true)
            plan = try NativeProvisioning.plan(configuration, verbosity: max(1, command.verbose + 1), only: command.only) { results in
                failed = results.contains { $0.outcome.isFailure }
            }
        } catch {
            StandardError.write("berth provision: \(error.message)\n")
            return 2
        }
        guard let plan else {
            StandardError.write("berth provision: nothing to provision (no step has its inputs)\n")
            return 0
        }
        let loop: EventLoop
        do {
            loop = try EventLoop()
        } catch {
            StandardError.write("berth provision: cannot set up the event loop: \(error)\n")
            return 1
        }
        var proceedAnswer = true
        plan.start(loop) { proceed in
            proceedAnswer = proceed
            loop.stop()
        }
        // A terminating signal stops the run; nothing is half-written.
        loop.onSignal = { signal in
            guard [SIGTERM, SIGINT, SIGHUP, SIGQUIT].contains(signal.number) else { return }
            plan.cancel()
            ProcessSweep.signalEveryoneElse(SIGKILL)
            failed = true
            loop.stop()
        }
        loop.run()
        return failed || !proceedAnswer ? 1 : 0
    }
}
