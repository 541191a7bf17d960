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
        var out = "{"
        out.reserveCapacity(count * 40)
        for (i, element) in enumerated() {
            if i > 0 { out += "," }
            guard let text = element.postgresText else { out += "NULL"; continue }
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
        return out + "}"
    }
}
