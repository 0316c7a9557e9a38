import ArgumentParser
import BerthPlugins

/// `berth hash-password`: the helper code-server's step runs for its
/// argon2 hash, so that libargon2 never loads into PID 1.
struct HashPasswordCommand: Verb {
    static let configuration = CommandConfiguration(
        commandName: "hash-password",
        abstract: "Hash the password on stdin for code-server (argon2id).",
        discussion: """
        The password is stdin's first line; a current hash on the second line is \
        printed again when the password still matches it, so a restart rewrites \
        nothing. Neither value goes through argv. Needs libargon2.so.1 (libargon2-1).
        """
    )

    func perform() -> Int32 {
        PasswordHash.runCommand()
    }
}
