import BerthCommands
import CBerthEarly
import Glibc

berth_forget_backtrace_default()
// argv as the loader passed it (CommandLine would need /proc).
let arguments = (0..<Int(berth_argc())).map { String(cString: berth_argv()[$0]!) }
exit(berthCommandLine(arguments: arguments))
