import CBerthSystemd
import Glibc

/// Telling an outer manager about berth (podman --sdnotify=container,
/// systemd-nspawn): READY=1, STATUS=, STOPPING=1 over NOTIFY_SOCKET.
public enum ServiceManager {
    /// Sends `state` when berth was given a NOTIFY_SOCKET; otherwise
    /// does nothing (and never loads libsystemd).
    @discardableResult
    public static func notify(_ state: String) -> Bool {
        guard getenv("NOTIFY_SOCKET") != nil else { return false }
        return berth_sd_notify(state) > 0
    }
}

/// Structured entries for journald, when its socket is there.
public final class Journal {
    public static let socketPath = "/run/systemd/journal/socket"

    /// nil when there is no journald to talk to (or no libsystemd).
    public static func ifPresent(socket: String = socketPath) -> Journal? {
        guard access(socket, W_OK) == 0, berth_systemd_available() == 1 else { return nil }
        return Journal()
    }

    /// One line a service wrote: MESSAGE, PRIORITY (6 for stdout, 4 for
    /// stderr), SYSLOG_IDENTIFIER (the service), BERTH_SERVICE.
    public func send(service: String, line: String, fromStandardError: Bool) {
        let field = "BERTH_SERVICE=\(service)"
        _ = field.withCString { pointer in
            var fields: [UnsafePointer<CChar>?] = [pointer]
            return fields.withUnsafeMutableBufferPointer { buffer in
                berth_journal_send(service, fromStandardError ? 4 : 6, line, buffer.baseAddress, 1)
            }
        }
    }
}
