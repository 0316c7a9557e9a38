import CBerth
import Glibc

/// glibc's getopt_long over a private copy of argv, so the compatibility
/// faces parse (and complain) exactly as the programs they stand in for.
struct GetOpt {
    enum Item {
        case option(Character, argument: String?)
        case invalid
    }

    struct LongOption {
        let name: String
        let takesArgument: Bool
        let short: Character
    }

    /// Returns the options in order and the operands after them. glibc
    /// prints its own diagnostics for invalid options (to stderr, named
    /// after argv[0]), as tini and dumb-init do.
    static func parse(_ arguments: [String], optionString: String, longOptions: [LongOption] = []) -> (items: [Item], operands: [String]) {
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        let names = longOptions.map { strdup($0.name) }
        defer {
            argv.forEach { free($0) }
            names.forEach { free($0) }
        }
        let table = zip(longOptions, names).map { long, name in
            berth_long_option(name: name, takes_argument: long.takesArgument ? 1 : 0, short_name: Int32(long.short.asciiValue!))
        }
        var items: [Item] = []
        var operands: [String] = []
        berth_getopt_reset()
        optionString.withCString { optstring in
            argv.withUnsafeMutableBufferPointer { buffer in
                while true {
                    var argument: UnsafePointer<CChar>?
                    let code = berth_getopt_long(Int32(arguments.count), buffer.baseAddress, optstring, table, table.count, &argument)
                    if code == -1 { break }
                    if code == Int32(UInt8(ascii: "?")) || code == Int32(UInt8(ascii: ":")) {
                        items.append(.invalid)
                        continue
                    }
                    items.append(.option(Character(UnicodeScalar(UInt8(code))), argument: argument.map { String(cString: $0) }))
                }
                // getopt may have permuted argv; operands start at optind.
                for index in Int(berth_getopt_index())..<arguments.count {
                    operands.append(String(cString: buffer[index]!))
                }
            }
        }
        return (items, operands)
    }
}
