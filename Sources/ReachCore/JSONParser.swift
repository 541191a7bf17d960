#if canImport(Glibc)
import Glibc
#endif
/// Parses JSON text (RFC 8259) straight into a `JSONValue`.
///
/// Foundation's `JSONDecoder` can only build a self-describing value by trying
/// each type in turn, and every wrong guess throws: profiling the campaign path
/// showed a third of its CPU there (recipient attrs, provider answers). This
/// parser reads the bytes once. It is strict: one value, optional whitespace,
/// nothing after it, valid UTF-8, no trailing commas, nesting at most
/// `maxDepth` deep (hostile input cannot exhaust the stack).
///
/// With `storable: true` (Kafka input: tasks and events, which are stored whole
/// as `jsonb`) it also refuses what PostgreSQL cannot store: U+0000 (the
/// `\u0000` escape; a raw 0x00 byte is a control character and always refused)
/// and number literals outside `numeric` (see `PostgresNumeric`).
public struct JSONParser {
    public struct Failure: Error, CustomStringConvertible, Equatable {
        public let offset: Int
        public let reason: String
        /// Where in the document it failed (`data.items[2]`); empty at the top level.
        public internal(set) var path: String = ""
        public var description: String {
            path.isEmpty ? "invalid JSON at byte \(offset): \(reason)" : "invalid JSON at byte \(offset) (\(path)): \(reason)"
        }

        init(offset: Int, reason: String, path: String = "") {
            self.offset = offset
            self.reason = reason
            self.path = path
        }

        /// Prepends an enclosing member name or index while unwinding.
        func inside(key: String) -> Failure {
            var copy = self
            let k = key.unicodeScalars.count > 64 ? String(key.unicodeScalars.prefix(64)) + "…" : key
            copy.path = path.isEmpty ? k : (path.hasPrefix("[") ? k + path : k + "." + path)
            return copy
        }

        func inside(index: Int) -> Failure {
            var copy = self
            copy.path = path.isEmpty ? "[\(index)]" : (path.hasPrefix("[") ? "[\(index)]" + path : "[\(index)]." + path)
            return copy
        }
    }

    public static let maxDepth = 256

    public static func parse(_ text: String, storable: Bool = false) throws(Failure) -> JSONValue {
        var copy = text
        return try copy.withUTF8 { bytes in Result { () throws(Failure) in try parse(bytes, storable: storable) } }.get()
    }

    public static func parse(_ bytes: [UInt8], storable: Bool = false) throws(Failure) -> JSONValue {
        try bytes.withUnsafeBufferPointer { buffer in Result { () throws(Failure) in try parse(buffer, storable: storable) } }.get()
    }

    public static func parse(_ bytes: UnsafeBufferPointer<UInt8>, storable: Bool = false) throws(Failure) -> JSONValue {
        var parser = JSONParser(bytes: bytes, storable: storable)
        parser.skipSpace()
        let value = try parser.value(depth: 0)
        parser.skipSpace()
        guard parser.at == bytes.count else { throw parser.fail("unexpected data after the value") }
        return value
    }

    private let bytes: UnsafeBufferPointer<UInt8>
    private let storable: Bool
    private var at = 0

    private init(bytes: UnsafeBufferPointer<UInt8>, storable: Bool) {
        self.bytes = bytes
        self.storable = storable
    }

    private func fail(_ reason: String) -> Failure {
        // Whatever was expected, a NUL byte here is the reason worth naming.
        if at < bytes.count, bytes[at] == 0 { return Failure(offset: at, reason: "raw NUL byte (U+0000 is not allowed)") }
        return Failure(offset: at, reason: reason)
    }

    private var peek: UInt8? { at < bytes.count ? bytes[at] : nil }

    private mutating func skipSpace() {
        while at < bytes.count, bytes[at] == 0x20 || bytes[at] == 0x0A || bytes[at] == 0x0D || bytes[at] == 0x09 { at += 1 }
    }

    private mutating func value(depth: Int) throws(Failure) -> JSONValue {
        guard let c = peek else { throw fail("unexpected end") }
        switch c {
        case UInt8(ascii: "{"): return try object(depth: depth + 1)
        case UInt8(ascii: "["): return try array(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
        default: throw fail("unexpected character")
        }
    }

    private mutating func literal(_ word: StaticString) throws(Failure) {
        let n = word.utf8CodeUnitCount
        guard at + n <= bytes.count else { throw fail("unexpected end") }
        for i in 0..<n where bytes[at + i] != word.utf8Start[i] { throw fail("unexpected character") }
        at += n
    }

    private mutating func object(depth: Int) throws(Failure) -> JSONValue {
        guard depth <= Self.maxDepth else { throw fail("nested too deeply") }
        at += 1
        var members: [String: JSONValue] = [:]
        skipSpace()
        if peek == UInt8(ascii: "}") { at += 1; return .object(members) }
        while true {
            skipSpace()
            guard peek == UInt8(ascii: "\"") else { throw fail("expected a member name") }
            let key: String
            do { key = try string() } catch { throw error.inside(key: "(member name)") }
            skipSpace()
            guard peek == UInt8(ascii: ":") else { throw fail("expected ':'").inside(key: key) }
            at += 1
            skipSpace()
            do { members[key] = try value(depth: depth) } catch { throw error.inside(key: key) }
            skipSpace()
            switch peek {
            case UInt8(ascii: ","): at += 1
            case UInt8(ascii: "}"): at += 1; return .object(members)
            default: throw fail("expected ',' or '}'")
            }
        }
    }

    private mutating func array(depth: Int) throws(Failure) -> JSONValue {
        guard depth <= Self.maxDepth else { throw fail("nested too deeply") }
        at += 1
        var items: [JSONValue] = []
        skipSpace()
        if peek == UInt8(ascii: "]") { at += 1; return .array(items) }
        while true {
            skipSpace()
            do { items.append(try value(depth: depth)) } catch { throw error.inside(index: items.count) }
            skipSpace()
            switch peek {
            case UInt8(ascii: ","): at += 1
            case UInt8(ascii: "]"): at += 1; return .array(items)
            default: throw fail("expected ',' or ']'")
            }
        }
    }

    private mutating func number() throws(Failure) -> Double {
        let start = at
        if peek == UInt8(ascii: "-") { at += 1 }
        guard let first = peek, isDigit(first) else { throw fail("expected a digit") }
        at += 1
        if first != UInt8(ascii: "0") { while let c = peek, isDigit(c) { at += 1 } }
        if peek == UInt8(ascii: ".") {
            at += 1
            guard let c = peek, isDigit(c) else { throw fail("expected a digit after '.'") }
            while let c = peek, isDigit(c) { at += 1 }
        }
        if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
            at += 1
            if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { at += 1 }
            guard let c = peek, isDigit(c) else { throw fail("expected a digit in the exponent") }
            while let c = peek, isDigit(c) { at += 1 }
        }
        let literal = UnsafeBufferPointer(rebasing: bytes[start..<at])
        if storable, let problem = PostgresNumeric.problem(literal) { at = start; throw fail(problem) }
        let text = String(decoding: literal, as: UTF8.self)
        guard let n = Double(text), n.isFinite else { at = start; throw fail("number out of range") }
        return n
    }

    private func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }

    private mutating func string() throws(Failure) -> String {
        at += 1
        let start = at
        // Fast path: no escapes, one validated copy.
        while at < bytes.count {
            let c = bytes[at]
            if c == UInt8(ascii: "\"") {
                guard let s = Self.text(UnsafeBufferPointer(rebasing: bytes[start..<at])) else {
                    throw fail("invalid UTF-8")
                }
                at += 1
                return s
            }
            if c == UInt8(ascii: "\\") { break }
            if c < 0x20 { throw fail("control character in a string") }
            at += 1
        }
        var out = [UInt8](UnsafeBufferPointer(rebasing: bytes[start..<at]))
        while true {
            guard let c = peek else { throw fail("unterminated string") }
            at += 1
            switch c {
            case UInt8(ascii: "\""):
                guard let s = out.withUnsafeBufferPointer(Self.text) else { throw fail("invalid UTF-8") }
                return s
            case UInt8(ascii: "\\"):
                guard let e = peek else { throw fail("unterminated string") }
                at += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800...0xDBFF).contains(scalar) {
                        guard peek == UInt8(ascii: "\\"), at + 1 < bytes.count, bytes[at + 1] == UInt8(ascii: "u") else {
                            throw fail("lone surrogate")
                        }
                        at += 2
                        let low = try hex4()
                        guard (0xDC00...0xDFFF).contains(low) else { throw fail("lone surrogate") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(scalar) {
                        throw fail("lone surrogate")
                    }
                    if scalar == 0, storable { at -= 6; throw fail("\\u0000 escape (U+0000 is not allowed)") }
                    out.append(contentsOf: Array(String(Unicode.Scalar(scalar)!).utf8))
                default:
                    throw fail("unknown escape")
                }
            default:
                if c == 0 { throw fail("raw NUL byte in a string (U+0000 is not allowed)") }
                if c < 0x20 { throw fail("control character in a string") }
                out.append(c)
            }
        }
    }

    /// The bytes as a string; nil when they are not UTF-8. ASCII (nearly every
    /// member name and value) is copied without the generic validating path,
    /// whose per-call metadata lookups showed in the campaign profile.
    static func text(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
        var ascii = true
        for b in bytes where b >= 0x80 { ascii = false; break }
        if ascii { return String(decoding: bytes, as: UTF8.self) }
        return String(validating: bytes, as: UTF8.self)
    }

    private mutating func hex4() throws(Failure) -> UInt32 {
        guard at + 4 <= bytes.count else { throw fail("unterminated string") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[at]
            let d: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = c - UInt8(ascii: "A") + 10
            default: throw fail("bad \\u escape")
            }
            v = v << 4 | UInt32(d)
            at += 1
        }
        return v
    }
}

/// The wanted string fields of an array's objects, in one flat array (no array per object).
public struct FieldTable: Sendable {
    /// Fields per object.
    public let width: Int
    var values: [String?] = []

    init(width: Int) { self.width = width }

    /// Objects read.
    public var count: Int { width == 0 ? 0 : values.count / width }

    /// Field `field` (its position in the names asked for) of object `item`.
    public subscript(item: Int, field: Int) -> String? { values[item * width + field] }
}

extension JSONParser {
    /// The objects of the array at member `key` of a top-level object, each
    /// read as the string values of `fields` (nil when absent or not a string),
    /// with no dictionary per object: a provider's 500 `results` are read this
    /// way. nil when the text is not such an object.
    ///
    /// `known`: the values the first field is expected to have, by position
    /// (the message ids of a provider's batch): an equal value is that string,
    /// not a new copy.
    public static func strings(ofObjectsIn key: String, fields: [String], in bytes: UnsafeBufferPointer<UInt8>,
                               known: [String] = []) -> FieldTable? {
        var parser = JSONParser(bytes: bytes, storable: false)
        return try? parser.topLevelArray(key, fields: fields, known: known)
    }

    private mutating func topLevelArray(_ wanted: String, fields: [String], known: [String]) throws(Failure) -> FieldTable? {
        skipSpace()
        guard peek == UInt8(ascii: "{") else { return nil }
        at += 1
        var found: FieldTable?
        skipSpace()
        if peek == UInt8(ascii: "}") { return nil }
        while true {
            let key = try memberName()
            if key == wanted, peek == UInt8(ascii: "[") {
                found = try objects(fields: fields, known: known)
            } else {
                _ = try value(depth: 1)
            }
            skipSpace()
            switch peek {
            case UInt8(ascii: ","): at += 1
            case UInt8(ascii: "}"):
                at += 1
                skipSpace()
                guard at == bytes.count else { throw fail("unexpected data after the value") }
                return found
            default: throw fail("expected ',' or '}'")
            }
        }
    }

    /// A member's name and its `:`, with the space around them; at its value after.
    private mutating func memberName() throws(Failure) -> String {
        skipSpace()
        guard peek == UInt8(ascii: "\"") else { throw fail("expected a member name") }
        let key = try string()
        skipSpace()
        guard peek == UInt8(ascii: ":") else { throw fail("expected ':'") }
        at += 1
        skipSpace()
        return key
    }

    /// Past a string not wanted, without building it (its escapes are stepped over, not checked).
    private mutating func skipString() throws(Failure) {
        at += 1
        while at < bytes.count {
            switch bytes[at] {
            case UInt8(ascii: "\""): at += 1; return
            case UInt8(ascii: "\\"): at += 2
            default: at += 1
            }
        }
        throw fail("unterminated string")
    }

    /// A string equal to `candidate` (no escapes, the same bytes) is `candidate` itself.
    private mutating func string(reusing candidate: String) throws(Failure) -> String {
        let start = at + 1
        var end = start
        while end < bytes.count, bytes[end] != UInt8(ascii: "\""), bytes[end] != UInt8(ascii: "\\") { end += 1 }
        var candidate = candidate
        if end < bytes.count, bytes[end] == UInt8(ascii: "\""),
           candidate.withUTF8({ u in u.count == end - start && (u.count == 0 || memcmp(u.baseAddress!, bytes.baseAddress! + start, u.count) == 0) }) {
            at = end + 1
            return candidate
        }
        return try string()
    }

    private mutating func objects(fields: [String], known: [String]) throws(Failure) -> FieldTable {
        at += 1
        var items = FieldTable(width: fields.count)
        skipSpace()
        if peek == UInt8(ascii: "]") { at += 1; return items }
        while true {
            skipSpace()
            let item = items.values.count
            items.values.append(contentsOf: repeatElement(nil, count: fields.count))
            if peek == UInt8(ascii: "{") {
                at += 1
                skipSpace()
                if peek == UInt8(ascii: "}") { at += 1 } else {
                    members: while true {
                        let index = fields.firstIndex(of: try memberName())
                        if peek == UInt8(ascii: "\"") {
                            if let index {
                                items.values[item + index] = index == 0 && items.count - 1 < known.count
                                    ? try string(reusing: known[items.count - 1]) : try string()
                            } else {
                                try skipString()
                            }
                        } else {
                            _ = try value(depth: 2)
                        }
                        skipSpace()
                        switch peek {
                        case UInt8(ascii: ","): at += 1
                        case UInt8(ascii: "}"): at += 1; break members
                        default: throw fail("expected ',' or '}'")
                        }
                    }
                }
            } else {
                _ = try value(depth: 1)
            }
            skipSpace()
            switch peek {
            case UInt8(ascii: ","): at += 1
            case UInt8(ascii: "]"): at += 1; return items
            default: throw fail("expected ',' or ']'")
            }
        }
    }
}

/// What PostgreSQL's `numeric` (and so `jsonb`) can store: at most 131 072
/// digits before the decimal point and 16 383 after it, the exponent counted
/// (`1e-20000` has 20 000 digits after the point; `1.5e3` none).
public enum PostgresNumeric {
    public static let maxDigitsBeforePoint = 131_072
    public static let maxDigitsAfterPoint = 16_383

    /// Why a JSON number literal (already known to be well-formed) does not fit, or nil.
    public static func problem(_ literal: UnsafeBufferPointer<UInt8>) -> String? {
        var i = 0
        let n = literal.count
        if i < n, literal[i] == UInt8(ascii: "-") { i += 1 }
        var intDigits = 0, leadingZeros = 0, fracDigits = 0
        var significant = false
        while i < n, literal[i] >= 0x30, literal[i] <= 0x39 {
            if literal[i] != 0x30 { significant = true }
            if !significant { leadingZeros += 1 }
            intDigits += 1
            i += 1
        }
        if i < n, literal[i] == UInt8(ascii: ".") {
            i += 1
            while i < n, literal[i] >= 0x30, literal[i] <= 0x39 {
                if literal[i] != 0x30 { significant = true }
                if !significant { leadingZeros += 1 }
                fracDigits += 1
                i += 1
            }
        }
        var exponent = 0
        if i < n, literal[i] == UInt8(ascii: "e") || literal[i] == UInt8(ascii: "E") {
            i += 1
            var negative = false
            if i < n, literal[i] == UInt8(ascii: "-") { negative = true; i += 1 } else if i < n, literal[i] == UInt8(ascii: "+") { i += 1 }
            var magnitude = 0
            while i < n, literal[i] >= 0x30, literal[i] <= 0x39 {
                magnitude = min(magnitude * 10 + Int(literal[i] - 0x30), 1 << 40)  // saturates far beyond any limit
                i += 1
            }
            exponent = negative ? -magnitude : magnitude
        }
        // Digits after the point as PostgreSQL keeps them (its display scale).
        if fracDigits - exponent > maxDigitsAfterPoint {
            return "number has \(fracDigits - exponent) digits after the decimal point; PostgreSQL numeric stores at most \(maxDigitsAfterPoint)"
        }
        if significant {
            // Position of the first non-zero digit relative to the point.
            let before = intDigits + exponent - leadingZeros
            if before > maxDigitsBeforePoint {
                return "number has \(before) digits before the decimal point; PostgreSQL numeric stores at most \(maxDigitsBeforePoint)"
            }
        }
        return nil
    }

    public static func problem(_ literal: String) -> String? {
        var copy = literal
        return copy.withUTF8 { problem($0) }
    }
}
