/// FNV-1a 64 of `text`, as 16 hex digits: a short, stable name for inputs
/// (a hook's command, a step's settings) that says whether they changed.
/// Not a security hash, and it need not be one: it is never a key and
/// never hides a secret (secret values are not part of what it is made of).
public func inputFingerprint(_ text: String) -> String {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in text.utf8 {
        hash ^= UInt64(byte)
        hash = hash &* 0x0000_0100_0000_01b3
    }
    let digits = String(hash, radix: 16)
    return String(repeating: "0", count: 16 - digits.count) + digits
}
