import Foundation
import ReachCore

/// SplitMix64: small, fast and seedable (SystemRandomNumberGenerator is not).
public struct SplitMix64: RandomNumberGenerator, Sendable {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Generates tasks and events, each known to be valid or not: the suite's fuzz test and
/// `reachd dev-fuzz` (scripts/chaos) share it. Valid tasks are campaigns `f-<n>` a day away on
/// `inapp`; valid events are `fz` events for users u00001…u00009.
public struct InputFuzzer: Sendable {
    var rng: SplitMix64
    var serial = 0

    public init(rng: SplitMix64) { self.rng = rng }

    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &rng) }
    mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &rng) < p }
    mutating func pick<T>(_ items: [T]) -> T { items[int(0...(items.count - 1))] }

    mutating func text(maxLength: Int = 20) -> String {
        let pieces = ["a", "b", "Z", "7", " ", "é", "中", "😀", #"\n"#, #"\""#, #"\\"#, #"\u00e9"#, #"\ud83d\ude00"#, "-", "{", "}"]
        return (0..<int(0...maxLength)).map { _ in pick(pieces) }.joined()
    }

    mutating func number() -> String {
        switch int(0...3) {
        case 0: return String(int(-1_000_000...1_000_000))
        case 1: return "\(int(0...999)).\(int(0...99999))"
        case 2: return "\(int(1...9)).\(int(0...9))e\(int(-300...300))"
        default: return "-0.\(String(repeating: "0", count: int(0...50)))\(int(1...9))"
        }
    }

    mutating func value(depth: Int = 0) -> String {
        switch depth > 3 ? int(0...3) : int(0...5) {
        case 0: return "\"\(text())\""
        case 1: return number()
        case 2: return pick(["true", "false", "null"])
        case 3: return "\"\(text(maxLength: 5))\""
        case 4: return "[" + (0..<int(0...3)).map { _ in value(depth: depth + 1) }.joined(separator: ",") + "]"
        default: return object(depth: depth + 1)
        }
    }

    mutating func object(depth: Int = 0) -> String {
        "{" + (0..<int(0...4)).map { i in "\"k\(i)\(text(maxLength: 3))\":\(value(depth: depth))" }.joined(separator: ",") + "}"
    }

    mutating func template() -> String {
        let parts = ["Hi ", "{{name}}", "{{data.k0}}", "{{#data.flag}}yes{{/data.flag}}", "{{^data.none}}no{{/data.none}}",
                     "{{! note }}", "{{{name}}}", " é中😀 ", "{{user_id}}"]
        return (0..<int(1...10)).map { _ in pick(parts) }.joined()
    }

    mutating func validDate() -> String {
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        let date = "\(int(2030...9998))-\(two(int(1...12)))-\(two(int(1...28)))"
        let time = "T\(two(int(0...23))):\(two(int(0...59))):\(two(int(0...59)))"
        return date + time + pick(["Z", "+08:00", "-05:30", ".123Z", "+00:00"])
    }

    /// Fields of a valid task (as JSON text), in order.
    mutating func taskFields() -> [(String, String)] {
        serial += 1
        var fields: [(String, String)] = [
            ("kind", "\"campaign\""), ("campaign_id", "\"f-\(serial)\""), ("segment", #"{"user_ids":["u00001","u00002"]}"#),
            ("channels", #"{"inapp":1}"#), ("template", #"{"title":\#(JSONText.quote(template())),"body":\#(JSONText.quote(template()))}"#),
            // Far in the future: the campaign is created, nothing runs.
            ("schedule", #"{"delay_seconds":86400}"#),
        ]
        if chance(0.5) { fields.append(("data", object())) }
        if chance(0.3) { fields.append(("name", "\"\(text())\"")) }
        if chance(0.3) { fields.append(("expires_at", "\"\(validDate())\"")) }
        if chance(0.3) { fields.append(("unknown_\(int(0...9))", value())) }
        if chance(0.2) { fields.append(("quiet_hours", pick(["true", "false"]))) }
        return fields
    }

    mutating func eventFields() -> [(String, String)] {
        serial += 1
        var fields: [(String, String)] = [
            ("event_id", "\"fe-\(serial)\""), ("event", "\"fz\""), ("user_id", "\"u0000\(int(1...9))\""),
        ]
        if chance(0.5) { fields.append(("properties", object())) }
        if chance(0.3) { fields.append(("occurred_at", "\"\(validDate())\"")) }
        if chance(0.2) { fields.append(("extra", value())) }
        return fields
    }

    static func render(_ fields: [(String, String)]) -> String {
        "{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
    }

    /// `fields` with the value of one of them (or a new one) replaced.
    mutating func replacing(_ fields: [(String, String)], _ key: String, _ value: String) -> [(String, String)] {
        var out = fields.filter { $0.0 != key }
        out.insert((key, value), at: int(0...out.count))
        return out
    }

    /// A string value with a NUL (escaped, or a raw byte via the `§` marker), somewhere.
    mutating func nulString() -> String { chance(0.5) ? "\"a\(text(maxLength: 3))\\u0000\"" : "\"a§\(text(maxLength: 3))\"" }

    mutating func deepJSON(_ levels: Int) -> String {
        let open = pick(["[", "{\"a\":"])
        return String(repeating: open, count: levels) + "1" + String(repeating: open == "[" ? "]" : "}", count: levels)
    }

    public struct Case: Sendable {
        public var bytes: [UInt8]
        public var valid: Bool
        public var kind: String
    }

    static func bytes(_ text: String) -> [UInt8] {
        var bytes = Array(text.utf8)
        let marker = Array("§".utf8)
        var i = 0
        while i + 1 < bytes.count {
            if bytes[i] == marker[0], bytes[i + 1] == marker[1] { bytes.replaceSubrange(i...(i + 1), with: [0]) }
            i += 1
        }
        return bytes
    }

    public mutating func task() -> Case {
        if chance(0.4) { return Case(bytes: Self.bytes(Self.render(taskFields())), valid: true, kind: "valid") }
        let f = taskFields()
        switch int(0...11) {
        case 0:
            let key = pick(["campaign_id", "name", "data", "zzz"])
            let v = key == "data" ? "{\"k\":\(nulString())}" : nulString()
            return Case(bytes: Self.bytes(Self.render(replacing(f, key, v))), valid: false, kind: "nul")
        case 1:
            let body = chance(0.5) ? #"{"body":"x\u0000{{name}}"}"# : #"{"body":"x§"}"#
            return Case(bytes: Self.bytes(Self.render(replacing(f, "template", body))), valid: false, kind: "nul-template")
        case 2:
            var b = Self.bytes(Self.render(replacing(f, "name", "\"AB\"")))
            let at = b.firstIndex(of: UInt8(ascii: "A"))!
            b.replaceSubrange(at...(at + 1), with: pick([[0xFF], [0xC3, 0x28], [0xE2, 0x82], [0xED, 0xA0, 0x80], [0xF8, 0x88, 0x80, 0x80, 0x80]]))
            return Case(bytes: b, valid: false, kind: "utf8")
        case 3:
            var b = (0..<int(1...2_000)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            b[0] = pick([0x00, 0x41, 0x5B, 0x22, 0xFF, 0x31])
            return Case(bytes: b, valid: false, kind: "random")
        case 4:
            let full = Self.bytes(Self.render(f))
            return Case(bytes: Array(full.prefix(int(0...(full.count - 2)))), valid: false, kind: "truncated")
        case 5:
            return Case(bytes: Self.bytes(Self.render(replacing(f, "data", "{\"d\":\(deepJSON(int(257...600)))}"))), valid: false, kind: "deep-json")
        case 6:
            let n = int(33...3_000)
            let body = String(repeating: "{{#a}}", count: n) + String(repeating: "{{/a}}", count: n)
            return Case(bytes: Self.bytes(Self.render(replacing(f, "template", #"{"body":"\#(body)"}"#))), valid: false, kind: "deep-template")
        case 7:
            let body = chance(0.5) ? String(repeating: "{{name}}", count: int(2_001...12_000))
                : String(repeating: "é", count: int(32_769...40_000))
            return Case(bytes: Self.bytes(Self.render(replacing(f, "template", #"{"body":"\#(body)"}"#))), valid: false, kind: "big-template")
        case 8:
            let wrong: [(String, String)] = [
                ("kind", "3"), ("kind", "null"), ("kind", "\"bogus\""), ("campaign_id", "5"), ("campaign_id", "\"\""), ("campaign_id", "\"bad id!\""),
                ("segment", "\"all\""), ("segment", "{}"), ("segment", #"{"id":"a","user_ids":["x"]}"#), ("channels", "\"inapp\""),
                ("channels", #"{"fax":1}"#), ("channels", #"{"inapp":-1}"#), ("channels", #"{"inapp":0}"#), ("template", "[]"),
                ("template", #"{"title":"x"}"#), ("template", #"{"body":5}"#), ("quiet_hours", "\"yes\""), ("schedule", #"{"delay_seconds":-1}"#),
                ("schedule", #"{"at":5}"#), ("schedule", "\"soon\""), ("data", "[1]"), ("fallback", "\"email\""), ("fallback", #"["fax"]"#),
                ("template", #"{"body":"{{#a}}"}"#), ("template", #"{"body":"{{=<% %>=}}"}"#),
            ]
            let (k, v) = pick(wrong)
            return Case(bytes: Self.bytes(Self.render(replacing(f, k, v))), valid: false, kind: "wrong-type")
        case 9:
            // Up to about 200 KB: the test's own producer (and the broker) take at most 1 MB.
            let piece = pick(["c", "é", "\\u0001"])
            let huge = String(repeating: piece, count: int(129...(chance(0.1) ? 200_000 / piece.utf8.count : 5_000)))
            let (k, v) = pick([("campaign_id", "\"\(huge)\""), ("kind", "\"\(huge)\"")])
            return Case(bytes: Self.bytes(Self.render(replacing(f, k, v))), valid: false, kind: "huge")
        case 10:
            let n = pick(["1e-\(int(16_384...40_000))", "0.\(String(repeating: "0", count: int(16_383...20_000)))1", "1e\(int(131_072...300_000))",
                          "-\(int(1...9))e400", "\(int(1...9)).5e-16383"])
            let (k, v) = pick([("data", "{\"n\":\(n)}"), ("zzz", "[\(n)]"), ("name", n)])
            return Case(bytes: Self.bytes(Self.render(replacing(f, k, v))), valid: false, kind: "number")
        default:
            let d = pick(["0001-01-01T00:00:00+14:00", "2020-01-01T00:60:00Z", "10000-01-01T00:00:00Z", "2021-02-29T00:00:00Z",
                          "2030-01-01T24:00:00Z", "2030-01-01T00:00:00+24:00", "2030-01-01", "2030-01-01T00:00:60Z", "2030-13-01T00:00:00Z"])
            let (k, v) = pick([("schedule", #"{"at":"\#(d)"}"#), ("expires_at", "\"\(d)\"")])
            return Case(bytes: Self.bytes(Self.render(replacing(f, k, v))), valid: false, kind: "date")
        }
    }

    public mutating func event() -> Case {
        if chance(0.4) { return Case(bytes: Self.bytes(Self.render(eventFields())), valid: true, kind: "valid") }
        let f = eventFields()
        switch int(0...8) {
        case 0:
            let key = pick(["event_id", "user_id", "properties", "event"])
            let v = key == "properties" ? "{\"p\":\(nulString())}" : nulString()
            return Case(bytes: Self.bytes(Self.render(replacing(f, key, v))), valid: false, kind: "nul")
        case 1:
            var b = Self.bytes(Self.render(replacing(f, "properties", #"{"p":"AB"}"#)))
            let at = b.firstIndex(of: UInt8(ascii: "A"))!
            b.replaceSubrange(at...(at + 1), with: pick([[0xFF], [0xC3, 0x28], [0xED, 0xB0, 0x80]]))
            return Case(bytes: b, valid: false, kind: "utf8")
        case 2:
            var b = (0..<int(1...2_000)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            b[0] = pick([0x00, 0x41, 0x5B, 0x22, 0xFF, 0x31])
            return Case(bytes: b, valid: false, kind: "random")
        case 3:
            let full = Self.bytes(Self.render(f))
            return Case(bytes: Array(full.prefix(int(0...(full.count - 2)))), valid: false, kind: "truncated")
        case 4:
            return Case(bytes: Self.bytes(Self.render(replacing(f, "properties", "{\"d\":\(deepJSON(int(257...600)))}"))), valid: false, kind: "deep-json")
        case 5:
            let (k, v) = pick([("event_id", "5"), ("user_id", "null"), ("event", "[]"), ("properties", "[1]"), ("properties", "\"x\""),
                               ("occurred_at", "5"), ("event_id", "\"\"")])
            return Case(bytes: Self.bytes(Self.render(replacing(f, k, v))), valid: false, kind: "wrong-type")
        case 6:
            let huge = String(repeating: pick(["u", "é"]), count: int(257...(chance(0.1) ? 200_000 : 5_000)))
            return Case(bytes: Self.bytes(Self.render(replacing(f, pick(["event_id", "user_id", "event"]), "\"\(huge)\""))), valid: false, kind: "huge")
        case 7:
            let n = pick(["1e-\(int(16_384...40_000))", "0.\(String(repeating: "0", count: int(16_383...20_000)))1", "1e\(int(131_072...300_000))"])
            return Case(bytes: Self.bytes(Self.render(replacing(f, "properties", "{\"n\":\(n)}"))), valid: false, kind: "number")
        default:
            let d = pick(["0001-01-01T00:00:00+14:00", "2020-01-01T00:60:00Z", "10000-01-01T00:00:00Z", "2021-02-30T00:00:00Z"])
            return Case(bytes: Self.bytes(Self.render(replacing(f, "occurred_at", "\"\(d)\""))), valid: false, kind: "date")
        }
    }
}

