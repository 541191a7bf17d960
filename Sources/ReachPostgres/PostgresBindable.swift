/// A value bound as a query parameter, in PostgreSQL's text format. Values are
/// always sent as parameters, never spliced into SQL text.
public protocol PostgresBindable: Sendable {
    var postgresText: String? { get }
}

extension String: PostgresBindable { public var postgresText: String? { self } }
extension Substring: PostgresBindable { public var postgresText: String? { String(self) } }
extension Int: PostgresBindable { public var postgresText: String? { String(self) } }
extension Int64: PostgresBindable { public var postgresText: String? { String(self) } }
extension Int32: PostgresBindable { public var postgresText: String? { String(self) } }
extension Double: PostgresBindable { public var postgresText: String? { String(self) } }
extension Bool: PostgresBindable { public var postgresText: String? { self ? "true" : "false" } }

extension Optional: PostgresBindable where Wrapped: PostgresBindable {
    public var postgresText: String? { self?.postgresText }
}

/// Arrays bind as array literals (`{"a","b",NULL}`), for `unnest($1::text[])` batches.
extension Array: PostgresBindable where Element: PostgresBindable {
    public var postgresText: String? {
        // The page writes bind eight 5 000-element arrays: the common element
        // types take a specialised path instead of a witness call per element.
        // (Exact type checks: a cast such as [String] → [String?] would convert element by element.)
        if Element.self == String?.self { return ArrayLiteral.text(self as! [String?], count: count) { $0 } }
        if Element.self == String.self { return ArrayLiteral.text(self as! [String], count: count) { $0 } }
        if Element.self == Int.self { return ArrayLiteral.text(self as! [Int], count: count) { String($0) } }
        return ArrayLiteral.text(self, count: count) { $0.postgresText }
    }
}

enum ArrayLiteral {
    @inline(__always)
    static func text<S: Sequence>(_ elements: S, count: Int, _ render: (S.Element) -> String?) -> String {
        var out = "{"
        out.reserveCapacity(count * 40 + 2)
        var first = true
        for element in elements {
            if !first { out += "," }
            first = false
            guard let text = render(element) else { out += "NULL"; continue }
            out += "\""
            if text.utf8.contains(where: { $0 == 0x22 || $0 == 0x5C }) {
                for c in text.unicodeScalars {
                    if c == "\"" || c == "\\" { out += "\\" }
                    out.unicodeScalars.append(c)
                }
            } else {
                out += text
            }
            out += "\""
        }
        out += "}"
        return out
    }
}
