import BerthCore
import Glibc

/// code-server's `hashed-password`: argon2id in the standard encoded form
/// (`$argon2id$v=19$m=…`), which code-server verifies with the same
/// reference library. libargon2 is loaded when a password is hashed, in a
/// helper process (`berth hash-password`), so the init never links it and
/// its loop never spends the tens of milliseconds a hash costs.
public enum PasswordHash {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    private typealias HashEncoded = @convention(c) (UInt32, UInt32, UInt32, UnsafeRawPointer?, Int, UnsafeRawPointer?, Int, Int,
                                                     UnsafeMutablePointer<CChar>?, Int) -> Int32
    private typealias Verify = @convention(c) (UnsafePointer<CChar>?, UnsafeRawPointer?, Int) -> Int32

    // The parameters code-server's own tooling (node-argon2) uses.
    static let iterations: UInt32 = 3
    static let memoryKiB: UInt32 = 65536
    static let lanes: UInt32 = 4

    private static func symbol<T>(_ name: String, as type: T.Type) throws(Failure) -> T {
        guard let library = dlopen("libargon2.so.1", RTLD_NOW | RTLD_LOCAL) else {
            throw Failure(description: "libargon2 is not installed (apt-get install libargon2-1)")
        }
        guard let pointer = dlsym(library, name) else { throw Failure(description: "libargon2.so.1 lacks \(name)") }
        return unsafeBitCast(pointer, to: type)
    }

    public static func hash(_ password: [UInt8]) throws(Failure) -> String {
        let encode = try symbol("argon2id_hash_encoded", as: HashEncoded.self)
        var generator = SystemRandomNumberGenerator()
        let salt = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
        var encoded = [CChar](repeating: 0, count: 256)
        let status = password.withUnsafeBytes { pwd in
            salt.withUnsafeBytes { salt in
                encode(iterations, memoryKiB, lanes, pwd.baseAddress, pwd.count, salt.baseAddress, salt.count, 32, &encoded, encoded.count)
            }
        }
        guard status == 0 else { throw Failure(description: "argon2id failed (code \(status))") }
        return String(decoding: encoded.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public static func matches(_ password: [UInt8], encoded: String) throws(Failure) -> Bool {
        guard encoded.hasPrefix("$argon2") else { return false }
        let verify = try symbol("argon2id_verify", as: Verify.self)
        return password.withUnsafeBytes { pwd in verify(encoded, pwd.baseAddress, pwd.count) } == 0
    }

    /// `berth hash-password`: the password on stdin's first line, optionally
    /// the current hash on the second; prints the current hash when the
    /// password still matches it (so a restart rewrites nothing), else a
    /// new one. Neither value ever goes through argv.
    public static func runCommand() -> Int32 {
        guard let input = readAll(0, limit: 64 << 10) else {
            StandardError.write("berth hash-password: cannot read stdin\n")
            return 1
        }
        let lines = input.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        guard let password = lines.first, !password.isEmpty else {
            StandardError.write("berth hash-password: give the password on stdin\n")
            return 2
        }
        do throws(Failure) {
            if lines.count > 1, !lines[1].isEmpty {
                let current = String(decoding: lines[1], as: UTF8.self)
                if try matches(Array(password), encoded: current) {
                    StandardOutput.write(current + "\n")
                    return 0
                }
            }
            StandardOutput.write(try hash(Array(password)) + "\n")
            return 0
        } catch {
            StandardError.write("berth hash-password: \(error)\n")
            return 1
        }
    }
}
