import BerthCore
import BerthProvisioning
import Glibc

/// `berth provision`: runs the provisioning steps again, now, without a
/// command (after rotating a secret, say), on an event loop of its own.
/// `only` names the one step to run (the others are reported skipped).
/// Exit status 0 when no step failed, 1 when one did or a signal ended the
/// run, 2 for bad settings.
public func runProvisioningOnce(only: String?, verbosity: Int) -> Int32 {
    var failed = false
    let plan: (any InitPolicy.Preparation)?
    do {
        let configuration = try Configuration.read(NativeOptions(), variable: environmentValue, readsEnvironment: true)
        plan = try NativeProvisioning.plan(configuration, verbosity: verbosity, only: only) { results in
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
