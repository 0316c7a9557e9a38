import BerthCore
import BerthProvisioning
import CBerth
import Glibc

// berth-core-probe: drives BerthCore's event loop in a process of its own,
// single-threaded with every signal blocked from the start, as in berth.
// (Inside the XCTest process other threads would steal SIGCHLD.)
// Each scenario prints key=value lines for BerthCoreTests to check.

_ = berth_set_child_subreaper()
let loop = try EventLoop()
let started = MonotonicClock.now()

/// Unbuffered, so the test sees each line as it happens.
func say(_ line: String) { StandardOutput.write(line + "\n") }

func elapsed() -> Double { Double(MonotonicClock.now() - started) / 1e9 }
func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }
func alive(_ pid: pid_t) -> Bool { access("/proc/\(pid)", F_OK) == 0 }

func report(_ result: HelperResult) {
    say("status=\(result.status.map { "\($0)" } ?? "none")")
    say("out=\(text(result.standardOutput).split(separator: "\n").joined(separator: "|"))")
    say("err=\(text(result.standardError).split(separator: "\n").joined(separator: "|"))")
    say("dropped=\(result.droppedBytes)")
    say("timedOut=\(result.timedOut)")
    say("spawnError=\(result.spawnError.map { "\($0.step) \($0.errno.rawValue)" } ?? "none")")
    say("elapsed=\(Int(elapsed() * 1000))ms")
}

let scenario = CommandLine.arguments.dropFirst().first ?? ""
switch scenario {
case "helper":
    loop.runHelper(HelperCommand(arguments: ["sh", "-c", "echo out; echo err >&2; exit 3"], timeout: .seconds(10))) {
        report($0)
        loop.stop()
    }
case "helper-environment":
    // A secret in berth's own environment must not reach its tools.
    setenv("GITHUB_TOKEN", "ghp_probe_secret", 1)
    loop.runHelper(HelperCommand(arguments: ["sh", "-c", "env | sort | tr '\\n' ' '"], timeout: .seconds(10))) {
        report($0)
        loop.stop()
    }
case "helper-stdin":
    var command = HelperCommand(arguments: ["cat"], timeout: .seconds(10))
    command.input = Array("top secret\n".utf8)
    loop.runHelper(command) {
        report($0)
        loop.stop()
    }
case "helper-big-stdin":
    // More than a pipe holds: the loop must feed it as cat drains it.
    var command = HelperCommand(arguments: ["wc", "-c"], timeout: .seconds(10))
    command.input = [UInt8](repeating: UInt8(ascii: "x"), count: 1 << 20)
    loop.runHelper(command) {
        report($0)
        loop.stop()
    }
case "helper-timeout":
    let pidFile = "/tmp/berth-probe-\(getpid())"
    loop.runHelper(HelperCommand(arguments: ["sh", "-c", "sleep 30 & echo $! > \(pidFile); wait"], timeout: .milliseconds(300))) { result in
        report(result)
        let background = pid_t(String(decoding: readFile(pidFile) ?? [], as: UTF8.self).split(separator: "\n").first ?? "") ?? 0
        unlink(pidFile)
        // The whole group was killed: the background sleep is gone too.
        loop.schedule(after: .milliseconds(200)) {
            loop.reapChildren()
            say("backgroundAlive=\(background > 0 && alive(background))")
            loop.stop()
        }
    }
case "helper-missing":
    loop.runHelper(HelperCommand(arguments: ["/nonexistent/helper"], timeout: .seconds(5))) {
        report($0)
        loop.stop()
    }
case "helper-flood":
    var command = HelperCommand(arguments: ["sh", "-c", "head -c 20000000 /dev/zero"], timeout: .seconds(30))
    command.outputLimit = 1 << 20
    loop.runHelper(command) { result in
        say("kept=\(result.standardOutput.count)")
        var summary = result
        summary.standardOutput = []
        report(summary)
        loop.stop()
    }
case "timers":
    var order: [String] = []
    loop.schedule(after: .milliseconds(30)) { order.append("b") }
    loop.schedule(after: .milliseconds(10)) { order.append("a") }
    let cancelled = loop.schedule(after: .milliseconds(20)) { order.append("x") }
    loop.schedule(after: .milliseconds(40)) {
        order.append("c")
        say("order=\(order.joined())")
        loop.stop()
    }
    loop.cancel(cancelled)
case "responsive":
    // A helper that hangs and one that floods its output are both on the
    // loop; signals must still be handled at once.
    loop.runHelper(HelperCommand(arguments: ["sleep", "30"], timeout: .seconds(60))) { _ in }
    var flood = HelperCommand(arguments: ["sh", "-c", "i=0; while [ $i -lt 3000 ]; do head -c 1000000 /dev/zero; i=$((i+1)); done"], timeout: .seconds(60))
    flood.outputLimit = 1 << 16
    loop.runHelper(flood) { _ in }
    var received = 0
    loop.onSignal = { signal in
        guard signal.number == SIGUSR1 else { return }
        received += 1
        say("usr1 \(MonotonicClock.now())")
        if received == 5 { loop.stop() }
    }
    loop.schedule(after: .milliseconds(100)) { say("ready") }
    loop.schedule(after: .seconds(20)) { loop.stop() }
case "atomic-writer":
    // Rewrites a file with alternating contents until killed (bounded), for
    // the SIGKILL-during-write test.
    let path = CommandLine.arguments[2]
    let contents = [[UInt8](repeating: UInt8(ascii: "a"), count: 256 << 10),
                    [UInt8](repeating: UInt8(ascii: "b"), count: 512 << 10)]
    for round in 0..<5000 {
        do {
            try AtomicFile.write(contents[round % 2], to: path, mode: 0o640)
        } catch {
            say("error=\(error)")
            exit(1)
        }
        if round == 0 { say("ready") }
    }
    exit(0)
case "provision":
    // Fake steps covering every outcome; the hung one times out while the
    // loop keeps answering SIGUSR1.
    let reportPath = CommandLine.arguments[2]
    let steps: [ProvisioningStep] = [
        FakeStep("after-broken", dependencies: ["broken"]) { $1(.ok(nil)) },
        FakeStep("helper-step", dependencies: ["ok-step"]) { context, done in
            context.loop.runHelper(HelperCommand(arguments: ["sh", "-c", "echo from-helper"], timeout: .seconds(5))) {
                done($0.succeeded ? .ok(text($0.standardOutput).split(separator: "\n").first.map(String.init)) : .failed("helper failed"))
            }
        },
        FakeStep("ok-step") { $1(.ok("2 keys")) },
        FakeStep("missing-input", skip: "SSH_PUBLIC_KEY is not set") { $1(.ok(nil)) },
        FakeStep("broken") { $1(.failed("SSH_PUBLIC_KEY: line 2 is not an OpenSSH public key")) },
        FakeStep("hung") { _, _ in },
        FakeStep("disabled-one") { $1(.ok(nil)) },
    ]
    loop.onSignal = { signal in
        if signal.number == SIGUSR1 { say("usr1 \(MonotonicClock.now())") }
    }
    let context = StepContext(loop: loop, inputs: StepInputs(settings: Settings(environment: [:]), user: .failure(SettingError("no user"))))
    let provisioner = try Provisioner(steps: steps, context: context, disabled: ["disabled-one"], timeout: .milliseconds(1500))
    provisioner.start { results in
        do {
            try ProvisionReport.write(results, to: reportPath)
        } catch {
            say("error=\(error)")
        }
        StandardError.write(ProvisionReport.summary(results))
        say("done")
        loop.stop()
    }
    loop.schedule(after: .milliseconds(50)) { say("ready") }
case "unclaimed":
    var reaped = 0
    loop.onUnclaimedExit = { _, _ in reaped += 1 }
    loop.runHelper(HelperCommand(arguments: ["sh", "-c", "for i in 1 2 3 4 5; do (sleep 0.1 &) ; done"], timeout: .seconds(5))) { result in
        loop.schedule(after: .milliseconds(500)) {
            say("status=\(result.status.map { "\($0)" } ?? "none")")
            say("unclaimed=\(reaped)")
            loop.stop()
        }
    }
default:
    say("usage: berth-core-probe helper|helper-stdin|helper-big-stdin|helper-timeout|helper-missing|helper-flood|timers|responsive|unclaimed")
    exit(2)
}
loop.run()
// Helpers still running (the responsive scenario's) go with the probe.
ProcessSweep.signalEveryoneElse(SIGKILL)

final class FakeStep: ProvisioningStep {
    let name: String
    let dependencies: [String]
    let skip: String?
    let body: (StepContext, @escaping (StepOutcome) -> Void) -> Void

    init(_ name: String, dependencies: [String] = [], skip: String? = nil,
         _ body: @escaping (StepContext, @escaping (StepOutcome) -> Void) -> Void) {
        self.name = name
        self.dependencies = dependencies
        self.skip = skip
        self.body = body
    }

    func skipReason(given inputs: StepInputs) -> String? { skip }
    func run(in context: StepContext, done: @escaping (StepOutcome) -> Void) { body(context, done) }
}
