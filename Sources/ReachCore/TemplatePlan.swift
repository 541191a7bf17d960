/// A template compiled once into literal text and direct field lookups, for
/// the shape nearly every campaign uses: text and variables (`{{name}}`,
/// `{{attrs.level}}`, `{{{data.url}}}`, `{{& phone}}`). Rendering it is string
/// appends, with no dynamic casts or lookups by name per tag.
///
/// swift-mustache stays the reference. A source with any other tag (sections,
/// inverted sections, comments, partials, blocks, pragmas, transforms, the
/// implicit `.`) gets no plan; a value the plan would not print as
/// swift-mustache does (an object, an array, a lookup through a value that is
/// not an object) makes `render` answer nil. In both cases the caller renders
/// with swift-mustache. `TemplatePlanTests` renders random templates both ways.
public struct TemplatePlan: Sendable {
    /// A recipient column a template can name at its root.
    enum Column: String, Sendable {
        case userID = "user_id", name, phone, email, pushToken = "push_token", locale, timezone

        var name: String { rawValue }
    }

    /// Where a variable's value comes from.
    enum Lookup: Sendable {
        case column(Column, rest: [String])
        case attrs([String])
        case data([String])
        case properties([String])
        /// A root name the scope does not have: always empty.
        case empty([String])

        /// The variable's name as written, trimmed.
        var path: [String] {
            switch self {
            case .column(let column, let rest): [column.name] + rest
            case .attrs(let rest): ["attrs"] + rest
            case .data(let rest): ["data"] + rest
            case .properties(let rest): ["properties"] + rest
            case .empty(let segments): segments
            }
        }
    }

    enum Part: Sendable {
        case text(String)
        case variable(Lookup)
    }

    let parts: [Part]
    /// Bytes of literal text, to size the output once.
    let literalBytes: Int

    /// True when a variable reads the recipient (a column or `attrs`): otherwise one
    /// rendering serves every recipient of a campaign (`properties` vary per event).
    public var readsRecipient: Bool {
        parts.contains {
            switch $0 {
            case .variable(.column), .variable(.attrs): true
            default: false
            }
        }
    }

    public var readsProperties: Bool {
        parts.contains { if case .variable(.properties) = $0 { true } else { false } }
    }

    /// The plan of `source`; nil when it uses anything but text and variables.
    public static func compile(_ source: String) -> TemplatePlan? {
        var parts: [Part] = []
        var literal = 0
        var text: [UInt8] = []
        let bytes = Array(source.utf8)
        let n = bytes.count
        var i = 0
        func flush() {
            guard !text.isEmpty else { return }
            literal += text.count
            parts.append(.text(String(decoding: text, as: UTF8.self)))
            text.removeAll(keepingCapacity: true)
        }
        while i < n {
            guard bytes[i] == UInt8(ascii: "{"), i + 1 < n, bytes[i + 1] == UInt8(ascii: "{") else {
                text.append(bytes[i])
                i += 1
                continue
            }
            var j = i + 2
            let close: [UInt8]
            if j < n, bytes[j] == UInt8(ascii: "{") {
                close = Array("}}}".utf8)
                j += 1
            } else {
                close = Array("}}".utf8)
                if j < n, bytes[j] == UInt8(ascii: "&") { j += 1 }
            }
            // The tag's end; then its name, which must be plain: every other sigil means swift-mustache.
            var k = j
            while k + close.count <= n, !bytes[k..<(k + close.count)].elementsEqual(close) { k += 1 }
            guard k + close.count <= n, let lookup = Self.lookup(bytes[j..<k]) else { return nil }
            flush()
            parts.append(.variable(lookup))
            i = k + close.count
        }
        flush()
        return TemplatePlan(parts: parts, literalBytes: literal)
    }

    /// A variable's name, trimmed: dot-separated segments of letters, digits, `_` and `-`.
    static func lookup(_ raw: ArraySlice<UInt8>) -> Lookup? {
        // Spaces and tabs only: swift-mustache reads `{{` then a line break differently.
        func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 }
        var name = raw
        while let first = name.first, isSpace(first) { name = name.dropFirst() }
        while let last = name.last, isSpace(last) { name = name.dropLast() }
        var segments: [String] = []
        for segment in name.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false) {
            guard !segment.isEmpty, segment.allSatisfy({ b in
                (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x5F || b == 0x2D
            }) else { return nil }
            segments.append(String(decoding: segment, as: UTF8.self))
        }
        guard let root = segments.first else { return nil }
        let rest = Array(segments.dropFirst())
        switch root {
        case "user_id": return .column(.userID, rest: rest)
        case "name": return .column(.name, rest: rest)
        case "phone": return .column(.phone, rest: rest)
        case "email": return .column(.email, rest: rest)
        case "push_token": return .column(.pushToken, rest: rest)
        case "locale": return .column(.locale, rest: rest)
        case "timezone": return .column(.timezone, rest: rest)
        case "attrs": return .attrs(rest)
        case "data": return .data(rest)
        case "properties": return .properties(rest)
        default: return .empty(segments)
        }
    }

    /// The template with each variable as `\u{1}path\u{2}`: what `MessageTemplate.Marker`
    /// makes swift-mustache render when the two lay the text out alike.
    var markedText: String {
        parts.map { part in
            switch part {
            case .text(let text): return text
            case .variable(let lookup): return "\u{1}" + lookup.path.joined(separator: ".") + "\u{2}"
            }
        }.joined()
    }

    /// The text for `recipient`; nil when a value needs swift-mustache.
    public func render(recipient: Recipient, data: [String: JSONValue], properties: [String: JSONValue]?) -> String? {
        var out = ""
        out.reserveCapacity(literalBytes + 32)
        for part in parts {
            switch part {
            case .text(let text):
                out += text
            case .variable(let lookup):
                switch lookup {
                case .empty:
                    break
                case .column(let column, let rest):
                    guard let value = Self.value(column, recipient) else { break }
                    // A lookup inside a string: swift-mustache's reflection decides.
                    guard rest.isEmpty else { return nil }
                    out += value
                case .attrs(let path):
                    guard Self.append(path, in: recipient.attrs, to: &out) else { return nil }
                case .data(let path):
                    guard Self.append(path, in: data, to: &out) else { return nil }
                case .properties(let path):
                    guard let properties else { break }
                    guard Self.append(path, in: properties, to: &out) else { return nil }
                }
            }
        }
        return out
    }

    static func value(_ column: Column, _ r: Recipient) -> String? {
        switch column {
        case .userID: r.userID
        case .name: r.name
        case .phone: r.phone
        case .email: r.email
        case .pushToken: r.pushToken
        case .locale: r.locale
        case .timezone: r.timezone
        }
    }

    /// Appends the value at `path` inside `object` as `JSONScope` would show it; false for
    /// what the plan does not print (the object itself, an array, a lookup through a non-object).
    static func append(_ path: [String], in object: [String: JSONValue], to out: inout String) -> Bool {
        guard !path.isEmpty else { return false }
        var current = object
        for (index, key) in path.enumerated() {
            guard let value = current[key] else { return true }
            if index == path.count - 1 {
                switch value {
                case .string(let s): out += s
                case .number, .bool: out += value.text
                case .null: break
                case .array, .object: return false
                }
                return true
            }
            guard case .object(let inner) = value else { return false }
            current = inner
        }
        return true
    }
}
