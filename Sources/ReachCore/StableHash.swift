import Crypto

/// Hashes that are the same in every process, on every machine, forever:
/// routing and message ids must not change across restarts or instances
/// (Swift's `Hasher` is seeded per process, so it cannot be used here).
public enum StableHash {
    /// SHA-256 of the parts, each length-prefixed so ("a:b","c") ≠ ("a","b:c").
    public static func digest(_ parts: [String]) -> [UInt8] {
        var hasher = SHA256()
        for part in parts {
            var length = UInt32(part.utf8.count).bigEndian
            withUnsafeBytes(of: &length) { hasher.update(bufferPointer: $0) }
            var part = part
            part.withUTF8 { hasher.update(bufferPointer: UnsafeRawBufferPointer($0)) }
        }
        return Array(hasher.finalize())
    }

    /// FNV-1a (64 bit) of the text's UTF-8: cheap, for spreading ids over
    /// buckets (delay-queue shards, idempotency key buckets), never for ids.
    public static func fnv1a(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x100_0000_01b3
        }
        return hash
    }

    /// The first 64 bits of `digest(parts)`, as a number.
    public static func uint64(_ parts: [String]) -> UInt64 {
        digest(parts).prefix(8).reduce(0) { $0 << 8 | UInt64($1) }
    }
}

/// The deterministic id of one message: the same `(campaign_id, user_id)`
/// always gives the same id, so a provider can drop a resend after a crash.
public enum MessageID {
    public static func make(campaignID: String, userID: String) -> String {
        let digest = StableHash.digest(["message", campaignID, userID])
        let hex = Array("0123456789abcdef".utf8)
        var text: [UInt8] = [UInt8(ascii: "m"), UInt8(ascii: "-")]
        text.reserveCapacity(34)
        for byte in digest.prefix(16) {
            text.append(hex[Int(byte >> 4)])
            text.append(hex[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}
