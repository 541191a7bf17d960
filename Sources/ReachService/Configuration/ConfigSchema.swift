import ReachCore
import Yams

/// A configuration tree: YAML mappings, sequences and scalars, plus `raw` text
/// from an environment variable (read as a scalar, or parsed as YAML where a
/// list or mapping is expected).
indirect enum ConfigNode: Sendable {
    case null, scalar(String), mapping([(String, ConfigNode)]), sequence([ConfigNode]), raw(String)

    init(yaml text: String) throws {
        guard let node = try Yams.compose(yaml: text) else { self = .null; return }
        self.init(node)
    }

    init(_ node: Yams.Node) {
        switch node {
        case .scalar(let scalar):
            let null = scalar.style == .plain && ["", "~", "null", "Null", "NULL"].contains(scalar.string)
            self = null ? .null : .scalar(scalar.string)
        case .mapping(let mapping): self = .mapping(mapping.map { (key, value) in (key.string ?? "\(key)", ConfigNode(value)) })
        case .sequence(let sequence): self = .sequence(sequence.map { ConfigNode($0) })
        default: self = .null
        }
    }
}

/// One problem found in the configuration, tied to its key path (`channels.sms.batch_size`).
public typealias ConfigProblem = ValidationError

/// One read of the configuration: `REACH_` + a key's path upper-cased and joined
/// by `_` wins over the file (`postgres.url` → `REACH_POSTGRES_URL`). Type
/// mismatches, unknown keys and broken rules do not stop it: each becomes a
/// `ConfigProblem`, so one run reports all of them.
final class ConfigContext {
    let environment: [String: String]
    var problems: [ConfigProblem] = []
    init(environment: [String: String]) { self.environment = environment }

    func problem(_ path: [String], _ message: String) { problems.append(ConfigProblem(path.joined(separator: "."), message)) }
    func environmentName(_ path: [String]) -> String { (["REACH"] + path).joined(separator: "_").uppercased() }

    /// The node at `path` (whose parent is `parent`): the environment first, then the file.
    func node(_ path: [String], in parent: ConfigNode) -> ConfigNode {
        if let value = environment[environmentName(path)] { return .raw(value) }
        guard case .mapping(let pairs) = parent else { return .null }
        return pairs.first { $0.0 == path.last }?.1 ?? .null
    }

    /// The entries of the mapping (`list` false) or list at `path`, nil when absent or
    /// reported as something else. Environment text is parsed as YAML here.
    func entries(_ node: ConfigNode, _ path: [String], list: Bool = false) -> [(String, ConfigNode)]? {
        var node = node
        if case .raw(let text) = node {
            do { node = try ConfigNode(yaml: text) } catch { problem(path, "the value from \(environmentName(path)) is not valid YAML") }
        }
        switch (node, list) {
        case (.null, _), (.raw, _): return nil
        case (.mapping(let pairs), false): return pairs
        case (.sequence(let items), true): return items.map { ("", $0) }
        default: problem(path, list ? "expected a list" : "expected a mapping"); return nil
        }
    }
}

/// A bound on a key's value: `test` returns the problem, `hint` says the bound in the example file.
struct Rule<V> {
    var hint = ""
    var test: (V) -> String? = { _ in nil }

    /// "must be <text>" unless `ok`; with `got`, the message quotes the value.
    static func must(_ text: String, got: Bool = false, _ ok: @escaping (V) -> Bool) -> Rule {
        Rule(hint: "Must be \(text).") { ok($0) ? nil : "must be \(text)" + (got ? ", got '\($0)'" : "") }
    }
}

extension Rule where V == Int {
    static func range(_ r: ClosedRange<Int>, _ note: String = "") -> Rule { must("\(r.lowerBound)-\(r.upperBound)\(note)") { r.contains($0) } }
    static func atLeast(_ n: Int, _ note: String = "") -> Rule { must("at least \(n)\(note)") { $0 >= n } }
    static var positive: Rule { must("positive") { $0 > 0 } }
    /// 0 or more, 0 meaning `zero`.
    static func orMore(_ zero: String) -> Rule { must("0 (\(zero)) or more") { $0 >= 0 } }
}

extension Rule where V == String {
    static var nonEmpty: Rule { Rule { $0.isEmpty ? "must not be empty" : nil } }
    static func oneOf(_ values: [String], got: Bool = false) -> Rule {
        must(values.dropLast().joined(separator: ", ") + " or " + values.last!, got: got) { values.contains($0) }
    }
}

/// One configuration key: its YAML name, the property holding it (whose type and
/// initial value are the key's type and default), its rule and its doc.
struct Key<Root> {
    let name: String
    let doc: String
    let value: (Root) -> any ConfigValue
    let read: (inout Root, ConfigNode, [String], ConfigContext) -> Void
    let check: (Root, [String], ConfigContext) -> Void

    init<V: ConfigValue>(_ name: String, _ keyPath: WritableKeyPath<Root, V>, _ doc: String, _ rule: Rule<V> = Rule()) {
        self.name = name
        self.doc = [doc, rule.hint].filter { !$0.isEmpty }.joined(separator: " ")
        value = { $0[keyPath: keyPath] }
        read = { root, parent, path, c in
            if let v = V.read(c.node(path + [name], in: parent), path + [name], c) { root[keyPath: keyPath] = v }
        }
        check = { root, path, c in
            let v = root[keyPath: keyPath]
            if let message = rule.test(v) { c.problem(path + [name], message) }
            v.check(path + [name], c)
        }
    }

    /// An optional key: its rule applies when it is set.
    init<V: ConfigValue>(_ name: String, _ keyPath: WritableKeyPath<Root, V?>, _ doc: String, _ rule: Rule<V>) {
        self.init(name, keyPath, doc, Rule(hint: rule.hint) { $0.flatMap(rule.test) })
    }
}

/// What a key may hold: read from a node, checked, and written back as YAML.
protocol ConfigValue {
    /// The value at `node`, or nil to keep the default (absent, or a problem was noted).
    static func read(_ node: ConfigNode, _ path: [String], _ c: ConfigContext) -> Self?
    /// Checks what is inside (sections, lists and maps).
    func check(_ path: [String], _ c: ConfigContext)
    /// The value as inline YAML.
    var flow: String { get }
    /// The value as lines under its key, when it is written as a block.
    func block(_ indent: String) -> [String]?
}

extension ConfigValue {
    func check(_ path: [String], _ c: ConfigContext) {}
    func block(_ indent: String) -> [String]? { nil }
}

protocol ScalarValue: ConfigValue {
    static var expected: String { get }
    static func parse(_ text: String) -> Self?
}

extension ScalarValue {
    static func read(_ node: ConfigNode, _ path: [String], _ c: ConfigContext) -> Self? {
        switch node {
        case .null: return nil
        case .scalar(let text), .raw(let text):
            if let value = parse(text) { return value }
            c.problem(path, "expected \(expected), got '\(text)'")
        default: c.problem(path, "expected \(expected)")
        }
        return nil
    }
    var flow: String { "\(self)" }
}

extension Int: ScalarValue {
    static var expected: String { "an integer" }
    static func parse(_ text: String) -> Int? { Int(text.filter { $0 != "_" }) }
}

extension Double: ScalarValue {
    static var expected: String { "a number" }
    static func parse(_ text: String) -> Double? { Double(text.filter { $0 != "_" }) }
}

extension Bool: ScalarValue {
    static var expected: String { "true or false" }
    static func parse(_ text: String) -> Bool? {
        ["true", "yes", "on", "1"].contains(text.lowercased()) ? true : ["false", "no", "off", "0"].contains(text.lowercased()) ? false : nil
    }
}

extension String: ScalarValue {
    static var expected: String { "a string" }
    static func parse(_ text: String) -> String? { text }
    var flow: String { "\"" + replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\"" }
}

extension Optional: ConfigValue where Wrapped: ConfigValue {
    static func read(_ node: ConfigNode, _ path: [String], _ c: ConfigContext) -> Self? { Wrapped.read(node, path, c).map { .some($0) } }
    func check(_ path: [String], _ c: ConfigContext) { self?.check(path, c) }
    var flow: String { self?.flow ?? "~" }
    func block(_ indent: String) -> [String]? { self?.block(indent) }
}

/// A map whose keys the file chooses (channels by name, client properties).
extension Dictionary: ConfigValue where Key == String, Value: ConfigValue {
    static func read(_ node: ConfigNode, _ path: [String], _ c: ConfigContext) -> Self? {
        guard let pairs = c.entries(node, path) else { return nil }
        var map: Self = [:]
        for (name, _) in pairs { map[name] = Value.read(c.node(path + [name], in: .mapping(pairs)), path + [name], c) }
        return map
    }
    private var entries: [(key: String, value: Value)] { sorted { $0.key < $1.key } }
    func check(_ path: [String], _ c: ConfigContext) { for (name, value) in entries { value.check(path + [name], c) } }
    var flow: String { "{" + entries.map { "\($0.key): \($0.value.flow)" }.joined(separator: ", ") + "}" }
    /// The first entry with every key and its doc, the others inline with what they change.
    func block(_ indent: String) -> [String]? {
        guard let first = entries.first, let lines = first.value.block(indent + "  ") else { return nil }
        return ["\(indent)\(first.key):"] + lines + entries.dropFirst().map { "\(indent)\($0.key): \($0.value.flow)" }
    }
}

extension Array: ConfigValue where Element: ConfigValue {
    static func read(_ node: ConfigNode, _ path: [String], _ c: ConfigContext) -> Self? {
        c.entries(node, path, list: true)?.enumerated().compactMap { Element.read($1.1, item(path, $0), c) }
    }
    static func item(_ path: [String], _ index: Int) -> [String] { path.dropLast() + [path.last! + "[\(index)]"] }
    func check(_ path: [String], _ c: ConfigContext) { for (i, value) in enumerated() { value.check(Self.item(path, i), c) } }
    var flow: String { "[" + map(\.flow).joined(separator: ", ") + "]" }
    func block(_ indent: String) -> [String]? {
        guard let first, let lines = first.block(indent + "  ") else { return nil }
        return ["\(indent)-"] + lines + dropFirst().map { "\(indent)- \($0.flow)" }
    }
}

/// A mapping with a fixed set of keys; any other key is reported as unknown.
protocol ConfigSection: ConfigValue {
    init()
    static var keys: [Key<Self>] { get }
    /// Rules across keys, or that need the environment.
    func validate(_ path: [String], _ c: ConfigContext)
}

extension ConfigSection {
    func validate(_ path: [String], _ c: ConfigContext) {}

    static func read(_ node: ConfigNode, _ path: [String], _ c: ConfigContext) -> Self? {
        let pairs = c.entries(node, path) ?? [], keys = Self.keys
        for (name, _) in pairs where !keys.contains(where: { $0.name == name }) { c.problem(path + [name], "unknown key") }
        var value = Self()
        for key in keys { key.read(&value, .mapping(pairs), path, c) }
        return value
    }

    func check(_ path: [String], _ c: ConfigContext) {
        for key in Self.keys { key.check(self, path, c) }
        validate(path, c)
    }

    /// Only the keys that differ from the defaults.
    var flow: String {
        let defaults = Self()
        let changed = Self.keys.filter { $0.value(self).flow != $0.value(defaults).flow }
        return "{" + changed.map { "\($0.name): \($0.value(self).flow)" }.joined(separator: ", ") + "}"
    }

    /// Every key, each under its doc.
    func block(_ indent: String) -> [String]? {
        Self.keys.flatMap { key in
            let value = key.value(self), doc = key.doc.isEmpty ? [] : ["\(indent)# \(key.doc)"]
            guard let lines = value.block(indent + "  ") else { return doc + ["\(indent)\(key.name): \(value.flow)"] }
            return doc + ["\(indent)\(key.name):"] + lines
        }
    }
}
