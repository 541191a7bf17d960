/// Writes JSON string literals without going through Foundation.
public enum JSONText {
    public static func quote(_ s: String, into out: inout String) {
        out.append("\"")
        // Most values need no escaping: append them whole.
        guard s.utf8.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C }) else {
            out.append(s)
            out.append("\"")
            return
        }
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out.append("\\\"")
            case "\\": out.append("\\\\")
            case "\n": out.append("\\n")
            case "\r": out.append("\\r")
            case "\t": out.append("\\t")
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out.append("\\u" + String(repeating: "0", count: 4 - hex.count) + hex)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out.append("\"")
    }

    /// JSON text written in the source (member names, punctuation), as bytes.
    public static func append(_ literal: StaticString, to out: inout [UInt8]) {
        out.append(contentsOf: UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
    }

    /// The same, as UTF-8 bytes: one scan, and one copy when nothing needs escaping.
    public static func quote(_ s: String, into out: inout [UInt8]) {
        var s = s
        let plain = s.withUTF8 { u -> Bool in
            for b in u where b < 0x20 || b == 0x22 || b == 0x5C { return false }
            out.append(0x22)
            out.append(contentsOf: u)
            out.append(0x22)
            return true
        }
        guard !plain else { return }
        var text = ""
        quote(s, into: &text)
        out.append(contentsOf: text.utf8)
    }

    public static func quote(_ s: String) -> String {
        var out = ""
        quote(s, into: &out)
        return out
    }
}

/// Writes one flat JSON object field by field, straight into a string.
public struct JSONObjectWriter {
    public private(set) var text: String
    private var empty = true

    public init(capacity: Int = 256) {
        text = "{"
        text.reserveCapacity(capacity)
    }

    private mutating func key(_ key: String) {
        if !empty { text += "," }
        empty = false
        JSONText.quote(key, into: &text)
        text += ":"
    }

    public mutating func add(_ key: String, _ value: String?) {
        self.key(key)
        if let value { JSONText.quote(value, into: &text) } else { text += "null" }
    }

    public mutating func add(_ key: String, _ value: Int) {
        self.key(key)
        text += String(value)
    }

    /// Adds already-encoded JSON as the value.
    public mutating func add(_ key: String, json: String) {
        self.key(key)
        text += json
    }

    public func finish() -> String { text + "}" }
}

extension JSONText {
    /// The marker that ends a string cut by `quote(_:maxBytes:)`.
    public static func truncationMarker(total: Int) -> String { "… [truncated; \(total) bytes in all]" }

    /// `s` as a JSON string literal of at most `maxBytes` bytes (quotes
    /// included; at least 64 are assumed). When `s` does not fit, as much of its
    /// beginning as fits is kept, followed by `truncationMarker`, and
    /// `truncated` is true. Never cuts inside a character or an escape.
    public static func quote(_ s: String, maxBytes: Int) -> (text: String, truncated: Bool) {
        let whole = quote(s)
        if whole.utf8.count <= maxBytes { return (whole, false) }
        let marker = truncationMarker(total: s.utf8.count)
        let kept = prefix(of: s, within: max(0, maxBytes - 2 - marker.utf8.count)) { scalar in
            switch scalar {
            case "\"", "\\", "\n", "\r", "\t": 2
            default: scalar.value < 0x20 ? 6 : String(scalar).utf8.count
            }
        }
        return (quote(kept + marker), true)
    }

    /// `s` cut to whole characters within `maxBytes` of UTF-8, followed by
    /// `truncationMarker` (counted in the bytes) when it had to be cut.
    public static func cut(_ s: String, maxBytes: Int) -> (text: String, truncated: Bool) {
        guard s.utf8.count > maxBytes else { return (s, false) }
        let marker = truncationMarker(total: s.utf8.count)
        return (prefix(of: s, within: maxBytes - marker.utf8.count) { String($0).utf8.count } + marker, true)
    }

    /// The longest beginning of `s`, in whole scalars, whose `cost` adds up to at most `budget`.
    static func prefix(of s: String, within budget: Int, cost: (Unicode.Scalar) -> Int) -> String {
        var kept = String.UnicodeScalarView()
        var used = 0
        for scalar in s.unicodeScalars {
            let n = cost(scalar)
            if used + n > budget { break }
            used += n
            kept.append(scalar)
        }
        return String(kept)
    }

    /// Text that PostgreSQL can store in `text` and `jsonb`: U+0000 becomes U+FFFD.
    public static func storable(_ s: String) -> String {
        guard s.utf8.contains(0) else { return s }
        return String(String.UnicodeScalarView(s.unicodeScalars.map { $0.value == 0 ? "\u{FFFD}" : $0 }))
    }
}
