import BerthCore
import Glibc

/// Just enough of OpenSSH's key formats to validate an authorized_keys line
/// and to derive the public half of an OpenSSH private key without running
/// a tool (the public half is stored unencrypted in the file).
enum OpenSSHKeys {
    static let publicKeyTypes: Set<String> = [
        "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
    ]

    /// A checked authorized_keys line: optional options, type, key, comment.
    /// nil when it is not one. The blob must decode and name the same type.
    static func validateAuthorizedKey(_ line: Substring) -> String? {
        var fields = line.split(separator: " ", omittingEmptySubsequences: true)
        guard !fields.isEmpty else { return nil }
        if !publicKeyTypes.contains(String(fields[0])) {
            // Leading options (no-pty,command="..."); quoted spaces aside,
            // the key type must follow them.
            guard let typeIndex = fields.firstIndex(where: { publicKeyTypes.contains(String($0)) }), typeIndex > 0 else { return nil }
            fields = Array(fields[typeIndex...])
        }
        guard fields.count >= 2, let blob = Base64.decode(fields[1]) else { return nil }
        var reader = SSHBuffer(blob)
        guard let embeddedType = reader.readString(), embeddedType == Array(fields[0].utf8) else { return nil }
        return String(line).trimmingWhitespace()
    }

    struct PrivateKey {
        let type: String
        let publicLine: String
    }

    /// Parses `-----BEGIN OPENSSH PRIVATE KEY-----` (encrypted or not) for
    /// its type and public key. nil for anything else.
    static func parseOpenSSHPrivateKey(_ text: String) -> PrivateKey? {
        let lines = text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).map { $0.trimmingWhitespace() }
        guard let begin = lines.firstIndex(of: "-----BEGIN OPENSSH PRIVATE KEY-----"),
              let end = lines.firstIndex(of: "-----END OPENSSH PRIVATE KEY-----"), end > begin else { return nil }
        guard let body = Base64.decode(Substring(lines[(begin + 1)..<end].joined())) else { return nil }
        var buffer = SSHBuffer(body)
        let magic = Array("openssh-key-v1".utf8) + [0]
        guard buffer.readBytes(magic.count) == magic,
              buffer.readString() != nil,  // cipher
              buffer.readString() != nil,  // kdf
              buffer.readString() != nil,  // kdf options
              let count = buffer.readUInt32(), count == 1,
              let publicBlob = buffer.readString() else { return nil }
        var reader = SSHBuffer(publicBlob)
        guard let type = reader.readString().map({ String(decoding: $0, as: UTF8.self) }),
              publicKeyTypes.contains(type) else { return nil }
        return PrivateKey(type: type, publicLine: "\(type) \(Base64.encode(publicBlob))")
    }

    /// id_ed25519, id_rsa, id_ecdsa, id_ed25519_sk, id_ecdsa_sk: ssh's names.
    static func fileName(forType type: String) -> String {
        switch type {
        case "ssh-ed25519": return "id_ed25519"
        case "ssh-rsa": return "id_rsa"
        case "sk-ssh-ed25519@openssh.com": return "id_ed25519_sk"
        case "sk-ecdsa-sha2-nistp256@openssh.com": return "id_ecdsa_sk"
        default: return "id_ecdsa"
        }
    }
}

/// SSH wire format: uint32 big-endian lengths before byte strings.
struct SSHBuffer {
    private let bytes: [UInt8]
    private var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func readUInt32() -> UInt32? {
        guard offset + 4 <= bytes.count else { return nil }
        defer { offset += 4 }
        return bytes[offset..<(offset + 4)].reduce(0) { $0 << 8 | UInt32($1) }
    }

    mutating func readBytes(_ count: Int) -> [UInt8]? {
        guard count >= 0, offset + count <= bytes.count else { return nil }
        defer { offset += count }
        return Array(bytes[offset..<(offset + count)])
    }

    mutating func readString() -> [UInt8]? {
        guard let length = readUInt32(), length <= 1 << 20 else { return nil }
        return readBytes(Int(length))
    }
}

enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    private static let values: [UInt8: UInt8] = Dictionary(uniqueKeysWithValues: alphabet.enumerated().map { ($1, UInt8($0)) })

    static func decode(_ text: Substring) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard !chars.isEmpty, chars.count % 4 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count / 4 * 3)
        var index = 0
        while index < chars.count {
            var quad: [UInt8] = []
            var padding = 0
            for char in chars[index..<(index + 4)] {
                if char == UInt8(ascii: "=") {
                    padding += 1
                    quad.append(0)
                } else {
                    guard padding == 0, let value = values[char] else { return nil }
                    quad.append(value)
                }
            }
            if padding > 0 && index + 4 != chars.count { return nil }
            let triple = UInt32(quad[0]) << 18 | UInt32(quad[1]) << 12 | UInt32(quad[2]) << 6 | UInt32(quad[3])
            out.append(UInt8(triple >> 16 & 0xff))
            if padding < 2 { out.append(UInt8(triple >> 8 & 0xff)) }
            if padding < 1 { out.append(UInt8(triple & 0xff)) }
            index += 4
        }
        return out
    }

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        var index = 0
        while index < bytes.count {
            let chunk = bytes[index..<min(index + 3, bytes.count)]
            let value = chunk.enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (16 - 8 * UInt32($1.offset)) }
            for position in 0..<4 {
                out.append(position <= chunk.count ? alphabet[Int(value >> (18 - 6 * UInt32(position)) & 0x3f)] : UInt8(ascii: "="))
            }
            index += 3
        }
        return String(decoding: out, as: UTF8.self)
    }
}

extension StringProtocol {
    func trimmingCharacters() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" }
        return String(drop(while: isSpace).reversed().drop(while: isSpace).reversed())
    }
}
