/// Every value berth puts into a config file passes here first. A newline
/// in GIT_USER_NAME would start a new section of ~/.gitconfig (say a
/// `[core] sshCommand` that runs code), one in an env file a new command, one
/// in YAML a new key: no config format berth writes needs a control
/// character in a value, so none (bytes below 0x20, and 0x7f) gets through.
/// The error names where the value came from, never the value (it may be a
/// secret).
public func configValue(_ value: String, from source: String) throws(SettingError) -> String {
    try checkConfigValue(Array(value.utf8), from: source)
    return value
}

public func checkConfigValue(_ bytes: [UInt8], from source: String) throws(SettingError) {
    guard let index = bytes.firstIndex(where: { $0 < 0x20 || $0 == 0x7f }) else { return }
    let byte = bytes[index]
    let name = byte == 0x0a ? "a newline" : byte == 0x0d ? "a carriage return" : byte == 0x09 ? "a tab" : "a control character"
    throw SettingError("\(source): contains \(name) (byte 0x\(String(byte, radix: 16, uppercase: false).leftPadded(to: 2)) at offset \(index)); refused, since it could add lines to the config file it goes into")
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        String(repeating: "0", count: max(0, width - count)) + self
    }
}
