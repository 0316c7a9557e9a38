import Glibc
import SystemPackage

/// Makes `systemCall` (a Glibc call that returns -1 and sets errno on
/// failure) again for as long as a signal interrupts it, and throws any
/// other failure as `Errno`.
///
/// With `wasInterrupted()`, the one place berth looks for EINTR. Reads,
/// writes and opens go through swift-system's `FileDescriptor`, which
/// retries them itself (`retryOnInterrupt`); this is for the calls it has
/// no wrapper for (waitpid, poll, send, epoll_ctl, socket, ...).
/// `RetryingOnInterruptTests` fails when EINTR appears anywhere else.
@inlinable @inline(__always)
public func retryingOnInterrupt<Result: FixedWidthInteger>(_ systemCall: () -> Result) throws(Errno) -> Result {
    while true {
        let result = systemCall()
        if result != -1 { return result }
        if !wasInterrupted() { throw Errno(rawValue: errno) }
    }
}

/// True when the call that just returned -1 was only interrupted by a
/// signal: make it again. For PID 1's reaping and signal loops, which call
/// the kernel directly: a closure there (`retryingOnInterrupt`) kept the
/// optimizer from inlining the reaping pass into the loop, and four runtime
/// exclusivity checks per reaped orphan came back (callgrind: 226
/// instructions per orphan became 530).
@inlinable @inline(__always)
public func wasInterrupted() -> Bool {
    errno == EINTR
}
