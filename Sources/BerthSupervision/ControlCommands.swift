import BerthCore
import Glibc

/// What the control socket answers, from the supervisor's live state.
extension Supervisor {
    /// `peer`: the uid asking. Everyone who reaches the socket sees status
    /// and health; changing a service or reading its lines takes `mayControl`.
    public func answer(_ request: String, from peer: uid_t) -> (text: String, ok: Bool) {
        let words = request.split(separator: " ").map(String.init)
        switch (words.first ?? "", words.count) {
        case ("status", 1): return (statusTable(), true)
        case ("status", 2) where words[1] == "--json": return (statusJSON(), true)
        case ("health", 1):
            let problems = healthProblems()
            return ((problems + setupNotes().map { "note: " + $0 }).map { $0 + "\n" }.joined(), problems.isEmpty)
        case ("run", 2):
            guard let service = service(named: words[1]), service.definition.isTask else { return (unknownTask(words[1]), false) }
            guard mayControl(service, peer: peer) else { return (refusal(words[0], service, peer: peer), false) }
            guard !stopping else { return ("berth is shutting down\n", false) }
            guard service.pid == nil else {
                // Once more when this run ends: a session that came meanwhile
                // (postAttach) is not dropped, and many come to one run.
                service.runAgain = true
                return ("\(service.name) is running: it runs again when it ends\n", true)
            }
            rerun(service)
            return ("running \(service.name)\n", true)
        case ("logs", 2):
            guard let service = service(named: words[1]) else { return (unknown(words[1]), false) }
            guard mayControl(service, peer: peer) else { return (refusal(words[0], service, peer: peer), false) }
            return (service.recent.text, true)
        case ("restart", 2), ("stop", 2), ("start", 2):
            guard let service = service(named: words[1]) else { return (unknown(words[1]), false) }
            guard mayControl(service, peer: peer) else { return (refusal(words[0], service, peer: peer), false) }
            guard !stopping else { return ("berth is shutting down\n", false) }
            switch words[0] {
            case "stop":
                guard service.pid != nil || service.state == .backoff else { return ("\(service.name) is not running\n", false) }
                stop(service)
                return ("stopping \(service.name)\n", true)
            case "start":
                guard service.pid == nil, service.state != .backoff else { return ("\(service.name) is already running\n", false) }
                restart(service)
                return ("starting \(service.name)\n", true)
            default:
                restart(service)
                return ("restarting \(service.name)\n", true)
            }
        default:
            return ("unknown request '\(request)' (status [--json], health, logs NAME, restart NAME, stop NAME, start NAME)\n", false)
        }
    }

    /// The uid a service's processes run as.
    func runsAs(_ service: Service) -> uid_t {
        service.identity?.uid ?? getuid()
    }

    /// Root, and the user a service runs as, control it and read its lines;
    /// the workspace user controls another's service (a root one) only when
    /// its file says `control_by_workspace_user = true`. A root service's
    /// lines may hold what the workspace user must not read, and stopping it
    /// (sshd, say) is not theirs to decide.
    func mayControl(_ service: Service, peer: uid_t) -> Bool {
        peer == 0 || peer == runsAs(service) || (service.definition.controlByWorkspaceUser && workspaceUsers.contains(peer))
    }

    private func refusal(_ verb: String, _ service: Service, peer: uid_t) -> String {
        "not allowed: \(service.name) runs as uid \(runsAs(service)), not as uid \(peer); only root or that user may \(verb) it\n"
    }

    private func unknownTask(_ name: String) -> String {
        "no set-up task named '\(name)' (tasks: \(services.filter(\.definition.isTask).map(\.name).joined(separator: ", ")))\n"
    }

    private func unknown(_ name: String) -> String {
        "no service named '\(name)' (services: \(services.map(\.name).joined(separator: ", ")))\n"
    }

    /// Required services not ready, and any service unhealthy or failed.
    public func healthProblems() -> [String] {
        var problems: [String] = []
        for service in services where !service.definition.isTask || service.definition.critical {
            if service.state == .failed {
                problems.append("service \(service.name) failed: \(service.reason ?? "")")
            } else if service.definition.required && service.state != .ready {
                problems.append("service \(service.name) is not ready (\(service.state.rawValue))")
            } else if !service.healthy {
                problems.append("service \(service.name) is unhealthy (\(service.healthFailures) failed checks)")
            }
        }
        return problems
    }

    /// Set-up tasks still running or failed, when they do not make the
    /// container unhealthy (only BERTH_STRICT makes them critical).
    public func setupNotes() -> [String] {
        var notes: [String] = []
        let now = MonotonicClock.now()
        for service in services where service.definition.isTask {
            if service.pid != nil {
                notes.append("setting up: \(service.name) running for \(formatUptime(Int((now &- service.startedAt) / 1_000_000_000))) (berth logs \(service.name))")
            } else if service.state == .waiting {
                notes.append("setting up: \(service.name) waiting")
            } else if service.state == .failed, !service.definition.critical {
                notes.append("set-up: \(service.name) failed: \(service.reason ?? "") (berth logs \(service.name))")
            }
        }
        return notes
    }

    struct Row {
        let name, state, pid, uptime, restarts, ready, healthy, lastExit: String
    }

    private func rows() -> [(service: Service, uptime: Int?)] {
        let now = MonotonicClock.now()
        return services.map { service in
            (service, service.pid != nil ? Int((now &- service.startedAt) / 1_000_000_000) : nil)
        }
    }

    func statusTable() -> String {
        var table = [["SERVICE", "STATE", "PID", "UPTIME", "RESTARTS", "READY", "HEALTHY", "LAST EXIT"]]
        for (service, uptime) in rows() where !service.definition.isTask {
            table.append([
                service.name, service.state.rawValue, service.pid.map { String($0) } ?? "-",
                uptime.map(formatUptime) ?? "-", String(service.restarts), service.isReady ? "yes" : "no",
                service.healthy ? "yes" : "no", service.lastExit.map(\.summary) ?? "-",
            ])
        }
        let tasks = services.filter(\.definition.isTask)
        guard !tasks.isEmpty else { return aligned(table) }
        var setUp = [["SET-UP", "STATE", "STARTED", "TOOK", "RESULT", "LEFT RUNNING", "RUNS"]]
        let now = MonotonicClock.now()
        for task in tasks {
            let started = task.startedAt == 0 ? "-" : formatUptime(Int((now &- task.startedAt) / 1_000_000_000)) + " ago"
            let took = task.endedAt.map { formatDuration(milliseconds: Int(($0 &- task.startedAt) / 1_000_000)) } ?? "-"
            let left = task.leftProcesses.filter(\.isAlive).count
            setUp.append([task.name, task.state.rawValue, started, took, task.lastExit.map(\.summary) ?? "-",
                          left == 0 ? "-" : "\(left) process\(left == 1 ? "" : "es")", task.definition.rerunRule ?? "-"])
        }
        return aligned(table) + "\n" + aligned(setUp)
    }

    private func aligned(_ table: [[String]]) -> String {
        let widths = (0..<table[0].count).map { column in table.map { $0[column].count }.max() ?? 0 }
        return table.map { row in
            row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[index] - cell.count + 2)
            }.joined()
        }.joined(separator: "\n") + "\n"
    }

    func statusJSON() -> String {
        let entries = rows().map { service, uptime in
            "{\"name\": \"\(service.name)\", \"state\": \"\(service.state.rawValue)\", \"pid\": \(service.pid.map { String($0) } ?? "null"), "
                + "\"uptimeSeconds\": \(uptime.map(String.init) ?? "null"), \"restarts\": \(service.restarts), \"ready\": \(service.isReady), "
                + "\"healthy\": \(service.healthy), \"lastExit\": \(service.lastExit.map { "\"\($0.summary)\"" } ?? "null")"
                + (service.definition.isTask ? taskJSON(service) : "") + "}"
        }
        return "[" + entries.joined(separator: ",\n ") + "]\n"
    }
}

extension Supervisor {
    /// A task's extra fields: its timing, what it left running, its rule.
    func taskJSON(_ task: Service) -> String {
        let took = task.endedAt.map { String(Int(($0 &- task.startedAt) / 1_000_000)) } ?? "null"
        return ", \"task\": true, \"tookMilliseconds\": \(took), \"leftRunning\": \(task.leftProcesses.filter(\.isAlive).count), "
            + "\"runs\": \(JSON.quote(task.definition.rerunRule ?? ""))"
    }
}

func formatDuration(milliseconds: Int) -> String {
    milliseconds < 10_000 ? "\(milliseconds) ms" : formatUptime(milliseconds / 1000)
}

func formatUptime(_ seconds: Int) -> String {
    if seconds < 60 { return "\(seconds)s" }
    if seconds < 3600 { return "\(seconds / 60)m\(seconds % 60)s" }
    return "\(seconds / 3600)h\(seconds / 60 % 60)m"
}
