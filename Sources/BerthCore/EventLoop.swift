import CBerth
import Glibc
import SystemPackage

/// The one place berth waits: an epoll set holding a signalfd (every signal),
/// a timerfd (every timer) and whatever descriptors the parts of berth watch.
/// Handlers run on the loop's thread and must not block.
///
/// Every child of berth is reaped here with `waitpid(-1)`; whoever spawned a
/// process asks for its status with `onExit(of:)` instead of waiting itself.
public final class EventLoop {
    public typealias SignalHandler = (ReceivedSignal) -> Void
    public typealias ExitHandler = (ChildStatus) -> Void

    public struct Events: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let readable = Events(rawValue: EPOLLIN.rawValue)
        public static let writable = Events(rawValue: EPOLLOUT.rawValue)
        public static let hangup = Events(rawValue: EPOLLHUP.rawValue)
        public static let error = Events(rawValue: EPOLLERR.rawValue)
    }

    public struct TimerID: Hashable, Sendable {
        fileprivate let value: UInt64
    }

    private struct Timer {
        let id: UInt64
        let deadline: UInt64
        let handler: () -> Void
    }

    private let epollFD: FileDescriptor
    private let signalFD: FileDescriptor
    private let timerFD: FileDescriptor
    private var watchers: [Int32: (Events) -> Void] = [:]
    /// Sorted by deadline; berth keeps a handful of timers, not thousands.
    private var timers: [Timer] = []
    private var nextTimerID: UInt64 = 1
    private var armedDeadline: UInt64 = 0
    /// Who waits for which child. Few at a time (the child, a helper or
    /// two, services): a linear scan beats hashing on the reaping path,
    /// which runs once per process. A list of nodes rather than an array of
    /// tuples: the first array of a new element type costs the Swift
    /// runtime ~28,000 instructions of metadata at start-up (callgrind).
    private final class ExitWatch {
        let pid: pid_t
        let handler: ExitHandler
        var next: ExitWatch?
        init(pid: pid_t, handler: @escaping ExitHandler, next: ExitWatch?) {
            self.pid = pid
            self.handler = handler
            self.next = next
        }
    }
    private var exitWatches: ExitWatch?
    /// The pids in `exitWatches`, for the reaping loop to tell an orphan
    /// (nobody watches it) without walking the list: no reference counting
    /// per reaped child.
    /// The pids with a handler, in a buffer of the loop's own: the reaping
    /// pass reads them for every child, and a Swift array copied per pass
    /// cost a retain and a release per reaped orphan (~50 instructions,
    /// callgrind).
    private var watchedPIDs = UnsafeMutablePointer<pid_t>.allocate(capacity: 4)
    private var watchedCapacity = 4
    private var watchedCount = 0
    private var stopRequested = false
    private let signalBatch = 16
    private let signalBuffer = UnsafeMutablePointer<signalfd_siginfo>.allocate(capacity: 16)

    /// Every signal berth receives except SIGCHLD, which the loop consumes.
    public var onSignal: SignalHandler = { _ in }
    /// Called for each SIGCHLD before the reaping it triggers.
    public var onChildSignal: (() -> Void)?
    /// Called for every reaped process nobody registered with `onExit(of:)`.
    public var onUnclaimedExit: (pid_t, ChildStatus) -> Void = { _, _ in }
    /// Exits of children nobody registered for (orphans), counted always.
    public private(set) var unclaimedExits = 0
    /// Also deliver stops and continues to exit handlers (job control on a
    /// terminal). Off by default: asking the kernel for them makes every
    /// reap a little dearer, and only an interactive child needs them.
    public var reportsStops = false
    /// Called when a reaping pass finds berth has no children at all.
    public var onNoChildrenLeft: () -> Void = {}

    public init() throws(Errno) {
        berth_capture_and_block_signals()
        var all = sigset_t()
        sigfillset(&all)
        epollFD = FileDescriptor(rawValue: try retryingOnInterrupt { epoll_create1(Int32(EPOLL_CLOEXEC)) })
        signalFD = FileDescriptor(rawValue: try retryingOnInterrupt { signalfd(-1, &all, Int32(SFD_CLOEXEC | SFD_NONBLOCK)) })
        timerFD = FileDescriptor(rawValue: try retryingOnInterrupt { timerfd_create(CLOCK_MONOTONIC, Int32(TFD_CLOEXEC | TFD_NONBLOCK)) })
        try register(signalFD.rawValue, events: .readable)
        try register(timerFD.rawValue, events: .readable)
    }

    deinit {
        watchedPIDs.deallocate()
        signalBuffer.deallocate()
        try? signalFD.close()
        try? timerFD.close()
        try? epollFD.close()
    }

    // MARK: descriptors

    public func watch(_ fd: Int32, events: Events, handler: @escaping (Events) -> Void) throws(Errno) {
        if watchers[fd] != nil {
            var event = epoll_event(events: events.rawValue, data: epoll_data_t(fd: fd))
            _ = try retryingOnInterrupt { epoll_ctl(epollFD.rawValue, EPOLL_CTL_MOD, fd, &event) }
        } else {
            try register(fd, events: events)
        }
        watchers[fd] = handler
    }

    /// Stops watching; call before closing the descriptor.
    public func unwatch(_ fd: Int32) {
        guard watchers.removeValue(forKey: fd) != nil else { return }
        epoll_ctl(epollFD.rawValue, EPOLL_CTL_DEL, fd, nil)
    }

    public func watch(_ descriptor: FileDescriptor, events: Events, handler: @escaping (Events) -> Void) throws(Errno) {
        try watch(descriptor.rawValue, events: events, handler: handler)
    }

    public func unwatch(_ descriptor: FileDescriptor) {
        unwatch(descriptor.rawValue)
    }

    private func register(_ fd: Int32, events: Events) throws(Errno) {
        var event = epoll_event(events: events.rawValue, data: epoll_data_t(fd: fd))
        _ = try retryingOnInterrupt { epoll_ctl(epollFD.rawValue, EPOLL_CTL_ADD, fd, &event) }
    }

    // MARK: timers

    @discardableResult
    public func schedule(after delay: Duration, _ handler: @escaping () -> Void) -> TimerID {
        schedule(at: MonotonicClock.now() &+ delay.nanoseconds, handler)
    }

    @discardableResult
    public func schedule(at deadline: UInt64, _ handler: @escaping () -> Void) -> TimerID {
        let id = nextTimerID
        nextTimerID += 1
        let index = timers.firstIndex(where: { $0.deadline > deadline }) ?? timers.endIndex
        timers.insert(Timer(id: id, deadline: deadline, handler: handler), at: index)
        armTimerFD()
        return TimerID(value: id)
    }

    public func cancel(_ timer: TimerID) {
        timers.removeAll { $0.id == timer.value }
        armTimerFD()
    }

    /// One kernel timer for all of them, armed for the earliest deadline and
    /// disarmed when there is none: an idle berth gets no wake-ups.
    private func armTimerFD() {
        let deadline = timers.first?.deadline ?? 0
        guard deadline != armedDeadline else { return }
        armedDeadline = deadline
        var spec = itimerspec()
        if deadline != 0 {
            spec.it_value.tv_sec = Int(deadline / 1_000_000_000)
            spec.it_value.tv_nsec = Int(deadline % 1_000_000_000)
        }
        timerfd_settime(timerFD.rawValue, Int32(TFD_TIMER_ABSTIME), &spec, nil)
    }

    private func runDueTimers() {
        var expirations: UInt64 = 0
        _ = try? withUnsafeMutableBytes(of: &expirations) { try timerFD.read(into: $0) }
        armedDeadline = 0
        let now = MonotonicClock.now()
        while let first = timers.first, first.deadline <= now {
            timers.removeFirst()
            first.handler()
        }
        armTimerFD()
    }

    // MARK: children

    /// Delivers `pid`'s status changes to `handler` (stops and continues too
    /// when `reportsStops`; the handler is dropped once the process has
    /// terminated). Register in
    /// the same turn as the spawn: reaping only happens between turns.
    public func onExit(of pid: pid_t, _ handler: @escaping ExitHandler) {
        forgetExit(of: pid)
        exitWatches = ExitWatch(pid: pid, handler: handler, next: exitWatches)
        if watchedCount == watchedCapacity {
            let larger = UnsafeMutablePointer<pid_t>.allocate(capacity: watchedCapacity * 2)
            larger.update(from: watchedPIDs, count: watchedCount)
            watchedPIDs.deallocate()
            watchedPIDs = larger
            watchedCapacity *= 2
        }
        watchedPIDs[watchedCount] = pid
        watchedCount += 1
    }

    public func forgetExit(of pid: pid_t) {
        _ = takeWatch(of: pid)
    }

    @inline(__always)
    private func isWatched(_ pid: pid_t, in watched: UnsafeMutablePointer<pid_t>, count: Int) -> Bool {
        for index in 0..<count where watched[index] == pid { return true }
        return false
    }

    /// Unlinks and returns the watch for `pid`, if any.
    private func takeWatch(of pid: pid_t) -> ExitWatch? {
        var previous: ExitWatch?
        var current = exitWatches
        while let watch = current {
            if watch.pid == pid {
                if let previous { previous.next = watch.next } else { exitWatches = watch.next }
                for index in 0..<watchedCount where watchedPIDs[index] == pid {
                    watchedCount -= 1
                    watchedPIDs[index] = watchedPIDs[watchedCount]
                    break
                }
                return watch
            }
            previous = watch
            current = watch.next
        }
        return nil
    }

    private func watch(of pid: pid_t) -> ExitWatch? {
        var current = exitWatches
        while let watch = current, watch.pid != pid { current = watch.next }
        return current
    }

    /// Collects every child that has changed state. SIGCHLD coalesces, so one
    /// signal may stand for many children: loop until the kernel has none.
    /// Returns false when berth has no children left at all (ECHILD).
    ///
    /// An orphan storm makes this the init's hottest path, so `reportsStops`
    /// and `onUnclaimedExit` are read once per pass (each read of a class's
    /// property is a runtime exclusivity check), again after a registered
    /// handler ran, since it may change them; `onUnclaimedExit` must not.
    @discardableResult
    public func reapChildren() -> Bool {
        var options = reportsStops ? WNOHANG | WUNTRACED | WCONTINUED : WNOHANG
        var unclaimed = onUnclaimedExit
        var watched = watchedPIDs
        var watchedNow = watchedCount
        var unclaimedThisPass = 0
        defer { unclaimedExits += unclaimedThisPass }
        while true {
            var status: Int32 = 0
            // The kernel directly, not through a closure: see wasInterrupted().
            let pid = waitpid(-1, &status, options)
            if pid > 0 {
                let change = ChildStatus(waitStatus: status)
                // Forget first: once reaped, the number may be reused.
                if isWatched(pid, in: watched, count: watchedNow), let watch = change.isTermination ? takeWatch(of: pid) : watch(of: pid) {
                    watch.handler(change)
                    options = reportsStops ? WNOHANG | WUNTRACED | WCONTINUED : WNOHANG
                    unclaimed = onUnclaimedExit
                    watched = watchedPIDs
                    watchedNow = watchedCount
                } else if change.isTermination {
                    unclaimedThisPass += 1
                    unclaimed(pid, change)
                }
                continue
            }
            if pid == 0 { return true }
            if wasInterrupted() { continue }
            if errno == ECHILD {
                onNoChildrenLeft()
                return false
            }
            return true
        }
    }

    // MARK: running

    public func stop() {
        stopRequested = true
    }

    /// Runs until `stop()` is called (also if it was called before `run`).
    public func run() {
        defer { stopRequested = false }
        let capacity = 32
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: capacity)
        defer { events.deallocate() }
        while !stopRequested {
            if watchers.isEmpty && timers.isEmpty {
                // Only a signal can wake us: take it straight from the
                // kernel, one system call per wake-up instead of two.
                waitForSignalAlone()
                continue
            }
            let count = epoll_wait(epollFD.rawValue, events, Int32(capacity), -1)
            if count < 0 {
                if wasInterrupted() { continue }
                StandardError.write("berth: epoll_wait failed: \(Errno(rawValue: errno))\n")
                return
            }
            for index in 0..<Int(count) {
                let fd = events[index].data.fd
                let ready = Events(rawValue: events[index].events)
                if fd == signalFD.rawValue {
                    drainSignals()
                } else if fd == timerFD.rawValue {
                    runDueTimers()
                } else if let handler = watchers[fd] {
                    handler(ready)
                }
                if stopRequested { break }
            }
        }
    }

    private func waitForSignalAlone() {
        var number: Int32 = 0
        var code: Int32 = 0
        var sender: pid_t = 0
        // Interrupted (EINTR) or not, a failed wait returns to run's loop, which waits again.
        guard berth_wait_for_signal(&number, &code, &sender) == 0 else { return }
        dispatch(ReceivedSignal(number: number, code: code, senderPID: sender))
    }

    private func dispatch(_ signal: ReceivedSignal) {
        if signal.number == SIGCHLD {
            onChildSignal?()
            reapChildren()
        } else {
            onSignal(signal)
        }
    }

    /// Reads one batch. A short batch means the queue is empty, so there is
    /// no read just to hear EAGAIN; a full one is followed by another, up to
    /// 16 a wake-up (the epoll registration is level-triggered, so what is
    /// left comes at the next turn, after the other descriptors had theirs).
    private func drainSignals() {
        let size = MemoryLayout<signalfd_siginfo>.stride
        var batches = 0
        while !stopRequested && batches < 16 {
            batches += 1
            // Not FileDescriptor.read: this path forwards every signal (see wasInterrupted()).
            let got = read(signalFD.rawValue, signalBuffer, size * signalBatch)
            if got < 0 && wasInterrupted() { continue }
            if got <= 0 { return }
            let count = got / size
            for index in 0..<count {
                let info = signalBuffer[index]
                dispatch(ReceivedSignal(number: Int32(info.ssi_signo), code: info.ssi_code, senderPID: pid_t(info.ssi_pid)))
                if stopRequested { return }
            }
            if count < signalBatch { return }
        }
    }
}
