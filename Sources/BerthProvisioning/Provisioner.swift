import BerthCore
import Glibc

/// Runs the steps in dependency order, one at a time, each bounded by a
/// timeout, and reports every outcome.
public final class Provisioner {
    public struct OrderError: Error, CustomStringConvertible {
        public let description: String
    }

    let steps: [ProvisioningStep]
    let context: StepContext
    /// Steps not to run, with the reason reported for each.
    let excluded: [String: String]
    let timeout: Duration
    private var results: [StepResult] = []
    private var index = 0
    private var cancelled = false
    private var finish: (([StepResult]) -> Void)?

    /// `steps` in any order; `disabled` (BERTH_DISABLE) and `excluded` (with
    /// their own reasons) are reported as skipped. Throws for an unknown
    /// dependency or a cycle.
    public init(steps: [ProvisioningStep], context: StepContext, disabled: Set<String> = [],
                excluded: [String: String] = [:], timeout: Duration = .seconds(60)) throws(OrderError) {
        self.steps = try Provisioner.order(steps)
        self.context = context
        var reasons = excluded
        for name in disabled { reasons[name] = "disabled by BERTH_DISABLE" }
        self.excluded = reasons
        self.timeout = timeout
    }

    /// Dependencies first; otherwise the given order is kept.
    static func order(_ steps: [ProvisioningStep]) throws(OrderError) -> [ProvisioningStep] {
        do {
            return try dependencyOrder(steps, name: \.name, dependencies: \.dependencies)
        } catch {
            switch error {
            case .duplicateName(let name): throw OrderError(description: "two steps are named '\(name)'")
            case .unknownDependency(let step, let dependency): throw OrderError(description: "step '\(step)' depends on unknown step '\(dependency)'")
            case .cycle(let names): throw OrderError(description: "steps depend on each other in a cycle: \(names.joined(separator: ", "))")
            }
        }
    }

    /// Starts the run; `completion` gets every result, in order, on the loop.
    public func start(completion: @escaping ([StepResult]) -> Void) {
        finish = completion
        runNext()
    }

    /// Stops after the step in progress (SIGTERM during provisioning): the
    /// rest are reported as skipped. Atomic writes leave nothing half-done.
    public func cancel() {
        cancelled = true
    }

    private func runNext() {
        guard index < steps.count else {
            finish?(results)
            finish = nil
            return
        }
        let step = steps[index]
        index += 1
        if let reason = reasonNotToRun(step) {
            record(step, .skipped(reason), since: MonotonicClock.now())
            runNext()
            return
        }
        let started = MonotonicClock.now()
        var settled = false
        var timedOut = false
        var backstop: EventLoop.TimerID?
        let timedOutOutcome = StepOutcome.failed("timed out after \(timeout)")
        let settle: (StepOutcome) -> Void = { [self] outcome in
            guard !settled else { return }
            settled = true
            backstop.map(context.loop.cancel)
            // Past the timeout, whatever the step says now, it timed out.
            record(step, timedOut ? timedOutOutcome : outcome, since: started)
            runNext()
        }
        // At the timeout the step's helpers are killed; the step answers once
        // they are reaped, so nothing it started is alive when the next step
        // (or the command) starts. A step that still does not answer is
        // given up on a moment later.
        let timer = context.loop.schedule(after: timeout) { [self] in
            timedOut = true
            context.helpers.killAll()
            backstop = context.loop.schedule(after: Self.answerGrace) { settle(timedOutOutcome) }
        }
        step.run(in: context) { [self] outcome in
            context.loop.cancel(timer)
            settle(outcome)
        }
    }

    /// How long a timed-out step has to answer once its helpers are killed.
    static let answerGrace: Duration = .seconds(2)

    private func reasonNotToRun(_ step: ProvisioningStep) -> String? {
        if cancelled { return "berth is stopping" }
        if let reason = excluded[step.name] { return reason }
        for dependency in step.dependencies {
            if let result = results.first(where: { $0.name == dependency }), result.outcome.isFailure {
                return "needs '\(dependency)', which failed"
            }
        }
        return step.skipReason(given: context.inputs)
    }

    private func record(_ step: ProvisioningStep, _ outcome: StepOutcome, since started: UInt64) {
        let milliseconds = Int((MonotonicClock.now() - started) / 1_000_000)
        results.append(StepResult(name: step.name, outcome: outcome, milliseconds: milliseconds, startedAt: Int(time(nil)) - milliseconds / 1000))
    }
}
