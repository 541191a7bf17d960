/// A segment rule (SPEC §4.3): `all`/`any` groups of conditions on recipient
/// columns or `attrs` keys. Parsed from JSON, validated, and compiled to a SQL
/// predicate whose values and attribute names are all bound parameters.
public indirect enum SegmentRule: Sendable, Equatable {
    case all([SegmentRule])
    case any([SegmentRule])
    case condition(attr: String, op: Op, value: JSONValue)

    public enum Op: String, Sendable, CaseIterable {
        case eq, neq, `in`, gt, gte, lt, lte, exists, contains
    }

    /// Columns of `reach.recipients` a rule may name; any other `attr` is an `attrs` key.
    public static let columns: Set<String> = ["user_id", "name", "phone", "email", "push_token", "timezone", "locale"]
    public static let maxDepth = 8
    public static let maxConditions = 100
    public static let maxListLength = 1_000

    // MARK: Parsing

    public static func parse(_ json: JSONValue, path: String = "rule") throws -> SegmentRule {
        var count = 0
        return try parse(json, path: path, depth: 1, count: &count)
    }

    private static func parse(_ json: JSONValue, path: String, depth: Int, count: inout Int) throws -> SegmentRule {
        guard depth <= maxDepth else { throw ValidationError(path, "rules nest at most \(maxDepth) levels deep") }
        guard let object = json.object else { throw ValidationError(path, "must be an object with all, any, or attr/op/value") }
        if let group = object["all"] ?? object["any"] {
            let key = object["all"] != nil ? "all" : "any"
            guard object.count == 1 else {
                throw ValidationError(path, "a group has exactly one key (\"\(key)\"), found \(object.keys.sorted().joined(separator: ", "))")
            }
            guard let items = group.array, !items.isEmpty else { throw ValidationError("\(path).\(key)", "must be a non-empty array of rules") }
            let rules = try items.enumerated().map { i, item in
                try parse(item, path: "\(path).\(key)[\(i)]", depth: depth + 1, count: &count)
            }
            return key == "all" ? .all(rules) : .any(rules)
        }
        count += 1
        guard count <= maxConditions else { throw ValidationError(path, "a rule may hold at most \(maxConditions) conditions") }
        let unknown = Set(object.keys).subtracting(["attr", "op", "value"])
        guard unknown.isEmpty else { throw ValidationError(path, "unknown key(s) \(unknown.sorted().joined(separator: ", ")); a condition has attr, op and value") }
        guard let attr = object["attr"]?.string, !attr.isEmpty, attr.count <= 128 else {
            throw ValidationError("\(path).attr", "must be a non-empty string of at most 128 characters")
        }
        guard let opName = object["op"]?.string else { throw ValidationError("\(path).op", "is required") }
        guard let op = Op(rawValue: opName) else {
            throw ValidationError("\(path).op", "unknown op '\(opName)'; use one of \(Op.allCases.map(\.rawValue).joined(separator: " "))")
        }
        guard let value = object["value"] else { throw ValidationError("\(path).value", "is required") }
        try check(attr: attr, op: op, value: value, path: path)
        return .condition(attr: attr, op: op, value: value)
    }

    private static func check(attr: String, op: Op, value: JSONValue, path: String) throws {
        let isColumn = columns.contains(attr)
        switch op {
        case .exists:
            guard value.bool != nil else { throw ValidationError("\(path).value", "exists takes true or false") }
        case .in:
            guard let items = value.array, !items.isEmpty, items.count <= maxListLength else {
                throw ValidationError("\(path).value", "in takes a non-empty array of at most \(maxListLength) values")
            }
            for (i, item) in items.enumerated() {
                try checkScalar(item, isColumn: isColumn, attr: attr, path: "\(path).value[\(i)]")
            }
        case .contains:
            guard !isColumn else { throw ValidationError("\(path).op", "contains tests a JSON array in attrs; '\(attr)' is a text column") }
            try checkScalar(value, isColumn: false, attr: attr, path: "\(path).value")
        case .gt, .gte, .lt, .lte:
            guard value.number != nil || value.string != nil else {
                throw ValidationError("\(path).value", "\(op.rawValue) compares with a number or a string")
            }
            if isColumn && value.string == nil { throw ValidationError("\(path).value", "'\(attr)' is a text column: compare with a string") }
        case .eq, .neq:
            try checkScalar(value, isColumn: isColumn, attr: attr, path: "\(path).value")
        }
    }

    private static func checkScalar(_ value: JSONValue, isColumn: Bool, attr: String, path: String) throws {
        switch value {
        case .string: return
        case .number, .bool: if isColumn { throw ValidationError(path, "'\(attr)' is a text column: use a string") }
        case .null: throw ValidationError(path, "null is not a value; use exists false")
        case .array, .object: throw ValidationError(path, "must be a string, number or boolean")
        }
    }

    // MARK: SQL

    /// A predicate over `reach.recipients` aliased as `alias`, with `$n`
    /// placeholders numbered from `firstParameter`; `parameters` are their text values.
    public struct SQL: Sendable, Equatable {
        public var predicate: String
        public var parameters: [String]
    }

    public func sql(alias: String = "r", firstParameter: Int = 1) -> SQL {
        var parameters: [String] = []
        let predicate = compile(alias: alias, first: firstParameter, parameters: &parameters)
        return SQL(predicate: predicate, parameters: parameters)
    }

    private func compile(alias a: String, first: Int, parameters: inout [String]) -> String {
        func bind(_ text: String) -> String {
            parameters.append(text)
            return "$\(first + parameters.count - 1)"
        }
        switch self {
        case .all(let rules):
            return "(" + rules.map { $0.compile(alias: a, first: first, parameters: &parameters) }.joined(separator: " AND ") + ")"
        case .any(let rules):
            return "(" + rules.map { $0.compile(alias: a, first: first, parameters: &parameters) }.joined(separator: " OR ") + ")"
        case .condition(let attr, let op, let value):
            if Self.columns.contains(attr) {
                // Column names come from the allow-list above, never from the input.
                let column = "\(a).\(attr)"
                switch op {
                case .eq: return "(\(column) = \(bind(value.text)))"
                case .neq: return "(\(column) IS DISTINCT FROM \(bind(value.text)))"
                case .in: return "(\(column) = ANY(\(bind((value.array ?? []).map(\.text).postgresArrayLiteral))::text[]))"
                case .gt: return "(\(column) > \(bind(value.text)))"
                case .gte: return "(\(column) >= \(bind(value.text)))"
                case .lt: return "(\(column) < \(bind(value.text)))"
                case .lte: return "(\(column) <= \(bind(value.text)))"
                case .exists: return value.bool == true ? "(\(column) IS NOT NULL)" : "(\(column) IS NULL)"
                case .contains: return "FALSE"  // refused by validation
                }
            }
            let key = bind(attr)
            let field = "(\(a).attrs -> \(key)::text)"
            switch op {
            case .eq: return "(\(field) = \(bind(value.jsonText))::jsonb)"
            case .neq: return "(\(field) IS DISTINCT FROM \(bind(value.jsonText))::jsonb)"
            case .in: return "(jsonb_build_array(\(field)) <@ \(bind(value.jsonText))::jsonb)"
            case .gt, .gte, .lt, .lte:
                let symbol = [Op.gt: ">", .gte: ">=", .lt: "<", .lte: "<="][op]!
                if value.number != nil {
                    return "(jsonb_typeof(\(field)) = 'number' AND (\(a).attrs ->> \(key)::text)::numeric \(symbol) \(bind(value.text))::numeric)"
                }
                return "(jsonb_typeof(\(field)) = 'string' AND (\(a).attrs ->> \(key)::text) \(symbol) \(bind(value.text)))"
            case .exists:
                let present = "(\(field) IS NOT NULL AND \(field) <> 'null'::jsonb)"
                return value.bool == true ? present : "(NOT \(present))"
            case .contains:
                return "(jsonb_typeof(\(field)) = 'array' AND \(field) @> \(bind(JSONValue.array([value]).jsonText))::jsonb)"
            }
        }
    }
}

extension Array where Element == String {
    /// `{"a","b"}`: a PostgreSQL array literal with every element quoted.
    public var postgresArrayLiteral: String {
        "{" + map { element in
            var out = "\""
            for c in element.unicodeScalars {
                if c == "\"" || c == "\\" { out += "\\" }
                out.unicodeScalars.append(c)
            }
            return out + "\""
        }.joined(separator: ",") + "}"
    }
}
