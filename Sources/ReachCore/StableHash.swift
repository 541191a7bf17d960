import Crypto

/// Hashes that are the same in every process, on every machine, forever:
/// routing and message ids must not change across restarts or instances
/// (Swift's `Hasher` is seeded per process, so it cannot be used here).
public enum StableHash {
    /// SHA-256 of the parts, each length-prefixed so ("a:b","c") ≠ ("a","b:c").
    public static func digest(_ parts: [String]) -> [UInt8] {
        Array(hashed(parts))
    }

    /// The parts' bytes go into one buffer and through one digest update: a
    /// digest update per part (two per part, with its length) cost more than
    /// the hashing itself (a batch id hashes 501 parts).
    static func hashed(_ parts: [String]) -> SHA256.Digest {
        laidOut(byteCount: parts.reduce(0) { $0 + 4 + $1.utf8.count }) { put in
            for part in parts { put(part) }
        }
    }

    /// `digest(["message", a, b])` and the like without an array of parts: per message, twice.
    static func hashed(_ a: String, _ b: String, _ c: String) -> SHA256.Digest {
        laidOut(byteCount: 12 + a.utf8.count + b.utf8.count + c.utf8.count) { put in
            put(a)
            put(b)
            put(c)
        }
    }

    /// SHA-256 of the parts `write` puts, each as its UTF-8 length (4 bytes,
    /// big-endian) and its bytes, laid out in one buffer of `byteCount` bytes
    /// (on the stack when small) and hashed in one update.
    private static func laidOut(byteCount: Int, _ write: ((String) -> Void) -> Void) -> SHA256.Digest {
        withUnsafeTemporaryAllocation(byteCount: byteCount, alignment: 1) { raw in
            var at = 0
            write { part in
                var part = part
                part.withUTF8 { utf8 in
                    let length = UInt32(utf8.count)
                    for shift in stride(from: 24, through: 0, by: -8) {
                        raw[at] = UInt8(truncatingIfNeeded: length >> shift)
                        at += 1
                    }
                    if let base = utf8.baseAddress, utf8.count > 0 {
                        (raw.baseAddress! + at).copyMemory(from: base, byteCount: utf8.count)
                    }
                    at += utf8.count
                }
            }
            precondition(at == byteCount, "the parts fill the buffer")
            var hasher = SHA256()
            hasher.update(bufferPointer: UnsafeRawBufferPointer(raw))
            return hasher.finalize()
        }
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
        first64(hashed(parts))
    }

    public static func uint64(_ a: String, _ b: String, _ c: String) -> UInt64 {
        first64(hashed(a, b, c))
    }

    static func first64(_ digest: SHA256.Digest) -> UInt64 {
        digest.withUnsafeBytes { bytes in bytes.prefix(8).reduce(0) { $0 << 8 | UInt64($1) } }
    }
}

/// The deterministic id of one message: the same `(campaign_id, user_id)`
/// always gives the same id, so a provider can drop a resend after a crash.
public enum MessageID {
    public static func make(campaignID: String, userID: String) -> String {
        StableHash.hashed("message", campaignID, userID).withUnsafeBytes { digest in
            String(unsafeUninitializedCapacity: 34) { text in
                let hex: StaticString = "0123456789abcdef"
                text[0] = UInt8(ascii: "m")
                text[1] = UInt8(ascii: "-")
                for i in 0..<16 {
                    text[2 + 2 * i] = hex.utf8Start[Int(digest[i] >> 4)]
                    text[3 + 2 * i] = hex.utf8Start[Int(digest[i] & 0x0F)]
                }
                return 34
            }
        }
    }
}
