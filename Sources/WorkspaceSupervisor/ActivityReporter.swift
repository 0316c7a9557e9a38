import BerthCore
import BerthHTTP
import Glibc

/// Tells the control plane what the workspace is doing: a POST on every
/// change and a heartbeat at a fixed interval. Never more than one request
/// in flight: a change meanwhile is sent (as it then stands) right after;
/// a failure is retried with backoff (1 s doubling to 60 s), the newest
/// snapshot each time.
public final class ActivityReporter {
    let loop: EventLoop
    let agent: SupervisorSettings.Agent
    let snapshot: () -> ActivitySnapshot
    var inFlight: HTTPExchange?
    var pending = false
    var retry: EventLoop.TimerID?
    var heartbeat: EventLoop.TimerID?
    var failuresInARow = 0
    public private(set) var sent = 0
    public private(set) var failed = 0
    public private(set) var lastSuccess: WallTime?
    public private(set) var lastError: String?

    public init(loop: EventLoop, agent: SupervisorSettings.Agent, snapshot: @escaping () -> ActivitySnapshot) {
        self.loop = loop
        self.agent = agent
        self.snapshot = snapshot
    }

    /// Starts the heartbeat and sends the first report.
    public func start() {
        scheduleHeartbeat()
        report()
    }

    public func stop() {
        inFlight?.cancel()
        inFlight = nil
        if let retry { loop.cancel(retry) }
        if let heartbeat { loop.cancel(heartbeat) }
    }

    /// Something changed: send now (or as soon as the request in flight ends).
    public func report() {
        guard inFlight == nil else {
            pending = true
            return
        }
        if retry != nil {
            // A retry is waiting out its backoff: it sends the newest state.
            pending = true
            return
        }
        pending = false
        var headers = ["Content-Type: application/json", "Accept: application/json"]
        if let key = agent.apiKey { headers.append("Authorization: Bearer " + String(decoding: key.bytes, as: UTF8.self)) }
        let request = HTTPRequest(url: agent.activityURL, headers: headers, body: Self.body(environmentID: agent.environmentID, snapshot()),
                                  timeout: agent.timeout, bodyLimit: 64 << 10)
        inFlight = loop.fetch(request) { [weak self] result in
            guard let self else { return }
            inFlight = nil
            switch result {
            case .success(let response) where (200..<300).contains(response.status):
                sent += 1
                failuresInARow = 0
                lastSuccess = .now()
                lastError = nil
                if pending { report() }
            case .success(let response):
                fail("the control plane answered \(response.status)")
            case .failure(let failure):
                fail(failure.message)
            }
        }
    }

    private func fail(_ why: String) {
        failed += 1
        failuresInARow += 1
        lastError = why
        let delay = Duration.seconds(min(60, 1 << min(failuresInARow - 1, 6)))
        retry = loop.schedule(after: delay) { [weak self] in
            guard let self else { return }
            retry = nil
            report()
        }
    }

    private func scheduleHeartbeat() {
        heartbeat = loop.schedule(after: agent.heartbeat) { [weak self] in
            guard let self else { return }
            report()
            scheduleHeartbeat()
        }
    }

    /// The report's JSON, with the field names the control plane reads.
    public static func body(environmentID: String, _ snapshot: ActivitySnapshot) -> String {
        func time(_ value: WallTime?) -> String { value.map { JSON.quote($0.iso8601) } ?? "null" }
        return "{\"environmentId\": \(JSON.quote(environmentID)), \"snapshot\": {"
            + "\"lastIDEActivity\": \(time(snapshot.lastIDEActivity)), \"lastSSHActivity\": \(time(snapshot.lastSSHActivity)), "
            + "\"activeIDEConnections\": \(snapshot.activeIDEConnections), \"activeSSHConnections\": \(snapshot.activeSSHConnections)}, "
            + "\"timestamp\": \(JSON.quote(WallTime.now().iso8601))}"
    }
}
