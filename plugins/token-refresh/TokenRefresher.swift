import BerthCore
import BerthProvisioning
import Glibc

/// One refresh after another on the loop's timer. A failure keeps the last
/// good token in place and retries sooner, doubling the wait from 10 s up
/// to the interval; every attempt's outcome is in token-refresh.json for
/// `berth health`, and in the log without the token.
final class TokenRefresher {
    let context: StepContext
    let login: GitHubLogin
    let source: TokenSource
    let interval: Duration
    let timeout: Duration
    let statePath: String
    private(set) var failures = 0
    private var lastError: String?
    private var lastSuccess: Int?
    private var lastAttempt: Int?

    init(context: StepContext, login: GitHubLogin, source: TokenSource, interval: Duration, timeout: Duration, statePath: String) {
        self.context = context
        self.login = login
        self.source = source
        self.interval = interval
        self.timeout = timeout
        self.statePath = statePath
    }

    var nextDelay: Duration { Self.delay(afterFailures: failures, interval: interval) }

    /// After `failures` failures in a row: 10 s, 20 s, 40 s… capped at the
    /// interval; the interval itself after a success.
    static func delay(afterFailures failures: Int, interval: Duration) -> Duration {
        guard failures > 0 else { return interval }
        let base = min(interval, .seconds(10))
        return min(base * (1 << min(failures - 1, 16)), interval)
    }

    func scheduleNext() {
        let delay = nextDelay
        writeState(next: delay)
        _ = context.loop.schedule(after: delay) { [self] in
            refresh { [self] result in
                switch result {
                case .success(let what) where what != Self.unchanged:
                    StandardError.write("berth: token-refresh: \(what)\n")
                case .success:
                    break
                case .failure(let error):
                    StandardError.write("berth: token-refresh: \(error.message); keeping the last good token, next try in \(nextDelay.components.seconds) s\n")
                }
                // What the refresh ran (about 4 MiB of code: the helper's
                // spawn, the answer's checks, the file writes) need not stay
                // resident until the next one; it faults back in ~1 ms.
                CodePages.releaseSoon(on: context.loop, after: .zero)
                scheduleNext()
            }
        }
    }

    static let unchanged = "token unchanged"

    /// One attempt: read the source, and install the token if it is new.
    func refresh(done: @escaping (Result<String, SettingError>) -> Void) {
        lastAttempt = Int(time(nil))
        let fetch = source.read(settings: context.settings, loop: context.loop, timeout: timeout) { [self] result in
            switch result {
            case .failure(let error):
                record(.failure(error), done: done)
            case .success(let token) where token.secret == login.installed?.secret:
                record(.success(Self.unchanged), done: done)
            case .success(let token):
                login.login(token, context: context) { [self] result in
                    record(result.map { _ in "installed a new token from \(source.name)" }, done: done)
                }
            }
        }
        fetch.map { _ = context.helpers.add($0) }
    }

    private func record(_ result: Result<String, SettingError>, done: (Result<String, SettingError>) -> Void) {
        switch result {
        case .success:
            if failures > 0 { StandardError.write("berth: token-refresh: working again after \(failures) failed attempt\(failures == 1 ? "" : "s")\n") }
            failures = 0
            lastError = nil
            lastSuccess = lastAttempt
        case .failure(let error):
            failures += 1
            lastError = error.message
        }
        done(result)
    }

    /// Holds no secret: the source's name, times, and messages that name
    /// variables only.
    private func writeState(next: Duration) {
        func number(_ value: Int?) -> String { value.map(String.init) ?? "null" }
        let text = """
        {
          "source": \(JSON.quote(source.name)),
          "intervalSeconds": \(interval.components.seconds),
          "healthy": \(failures == 0),
          "consecutiveFailures": \(failures),
          "lastError": \(lastError.map(JSON.quote) ?? "null"),
          "lastAttempt": \(number(lastAttempt)),
          "lastSuccess": \(number(lastSuccess)),
          "nextAttempt": \(Int(time(nil)) + Int(next.components.seconds))
        }

        """
        do {
            try AtomicFile.ensureDirectory(AtomicFile.split(statePath).directory, mode: 0o755)
            try AtomicFile.write(Array(text.utf8), to: statePath, mode: 0o644)
        } catch {
            StandardError.write("berth: token-refresh: cannot record its state: \(error)\n")
        }
    }
}
