import Glibc

/// What the daemon does to itself before and after reading its settings:
/// the workspace user's processes may share its uid (run by hand) or race
/// it, and must not read the credentials it holds.
public enum ProcessHardening {
    /// PR_SET_DUMPABLE 0: no core dumps, no ptrace attach, and
    /// /proc/PID/{environ,mem,fd} become root's, even for a process of the
    /// same uid. Reset by exec, so helpers are not affected.
    /// prctl is variadic in C, which Swift does not import; its first two
    /// arguments are plain integers, so a fixed-arity pointer calls it
    /// correctly on the System V and AAPCS64 ABIs.
    public static func disableDumping() -> Bool {
        typealias Prctl = @convention(c) (Int32, UInt, UInt, UInt, UInt) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "prctl") else { return false }
        let prctl = unsafeBitCast(symbol, to: Prctl.self)
        let setDumpable: Int32 = 4, getDumpable: Int32 = 3  // <linux/prctl.h>
        return prctl(setDumpable, 0, 0, 0, 0) == 0 && prctl(getDumpable, 0, 0, 0, 0) == 0
    }

    /// Removes `names` from the environment. unsetenv only drops the
    /// pointer from `environ`: the kernel's /proc/PID/environ shows the
    /// original block on the initial stack, so the value bytes are zeroed
    /// in place first (whichever block, stack or heap, the entry lives in).
    public static func scrubEnvironment(_ names: [String]) {
        for name in names {
            let prefix = Array((name + "=").utf8)
            var cursor: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = environ
            while let current = cursor, let entry = current.pointee {
                let raw = UnsafeMutableRawPointer(entry).assumingMemoryBound(to: UInt8.self)
                var matches = true
                for (index, byte) in prefix.enumerated() where raw[index] != byte {
                    matches = false
                    break
                }
                if matches {
                    let value = raw + prefix.count
                    memset(value, 0, strlen(UnsafePointer(entry) + prefix.count))
                }
                cursor = current.successor()
            }
            unsetenv(name)
        }
    }
}
