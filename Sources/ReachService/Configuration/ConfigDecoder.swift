import Yams

/// A configuration tree: YAML mappings, sequences and scalars, plus `raw` text
/// from an environment variable (read as a scalar, or parsed as YAML when a
/// list or mapping is expected there).
indirect enum ConfigNode: Sendable {
    case null
    case scalar(String)
    case mapping([(String, ConfigNode)])
    case sequence([ConfigNode])
    case raw(String)

    init(yaml text: String) throws {
        guard let node = try Yams.compose(yaml: text) else { self = .null; return }
        self.init(node)
    }

    init(_ node: Yams.Node) {
        switch node {
        case .scalar(let scalar):
            let null = scalar.style == .plain && ["", "~", "null", "Null", "NULL"].contains(scalar.string)
            self = null ? .null : .scalar(scalar.string)
        case .mapping(let mapping):
            self = .mapping(mapping.map { (key, value) in (key.string ?? "\(key)", ConfigNode(value)) })
        case .sequence(let sequence):
            self = .sequence(sequence.map { ConfigNode($0) })
        default:
            self = .null
        }
    }

    func child(_ key: String) -> ConfigNode? {
        if case .mapping(let pairs) = self { return pairs.first { $0.0 == key }?.1 }
        return nil
    }
}

/// One problem found in the configuration, tied to its key path.
public struct ConfigProblem: Sendable, Equatable, CustomStringConvertible {
    public var path: String
    public var message: String
    public init(_ path: String, _ message: String) {
        self.path = path
        self.message = message
    }
    public var description: String { path.isEmpty ? message : "\(path): \(message)" }
}

/// Decodes configuration from a YAML tree with environment overrides.
///
/// For every key the decoder asks for, `REACH_` + the key path upper-cased and
/// joined by `_` wins over the file (`postgres.url` → `REACH_POSTGRES_URL`). Type
/// mismatches and unknown keys do not stop decoding: each becomes a
/// `ConfigProblem`, so one run reports all of them.
final class ConfigDecoding {
    let environment: [String: String]
    let prefix: String
    var problems: [ConfigProblem] = []
    private var mappings: [String: [String]] = [:]
    private var visited: Set<String> = []

    init(environment: [String: String], prefix: String = "REACH") {
        self.environment = environment
        self.prefix = prefix
    }

    func decode<T: Decodable>(_ type: T.Type, from node: ConfigNode) throws -> T {
        let value = try T(from: NodeDecoder(node: node, path: [], decoding: self))
        for (path, keys) in mappings.sorted(by: { $0.key < $1.key }) {
            for key in keys where !visited.contains(join(path, key)) {
                problems.append(ConfigProblem(join(path, key), "unknown key"))
            }
        }
        return value
    }

    func environmentName(_ path: [String]) -> String {
        ([prefix] + path).joined(separator: "_").uppercased()
    }

    func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func noteMapping(_ path: [String], keys: [String]) {
        let joined = path.joined(separator: ".")
        if mappings[joined] == nil { mappings[joined] = keys }
    }

    func noteVisit(_ path: [String]) { visited.insert(path.joined(separator: ".")) }

    func problem(_ path: [String], _ message: String) {
        problems.append(ConfigProblem(path.joined(separator: "."), message))
    }

    /// The node for `key` under `path`: the environment first, then the file.
    func node(_ path: [String], in parent: ConfigNode) -> ConfigNode? {
        if let value = environment[environmentName(path)] { return .raw(value) }
        return parent.child(path.last!)
    }

    /// Whether an environment variable sets something below `path`.
    func environmentTouches(_ path: [String]) -> Bool {
        let name = environmentName(path) + "_"
        return environment.keys.contains { $0.hasPrefix(name) }
    }
}

struct NodeDecoder: Decoder {
    let node: ConfigNode
    let path: [String]
    let decoding: ConfigDecoding
    var codingPath: [any CodingKey] { path.map { AnyKey($0) } }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        var resolved = node
        if case .raw(let text) = node {
            do { resolved = try ConfigNode(yaml: text) } catch {
                decoding.problem(path, "the value from \(decoding.environmentName(path)) is not valid YAML")
                resolved = .mapping([])
            }
        }
        switch resolved {
        case .mapping(let pairs):
            decoding.noteMapping(path, keys: pairs.map(\.0))
        case .null:
            resolved = .mapping([])
        default:
            decoding.problem(path, "expected a mapping")
            resolved = .mapping([])
        }
        return KeyedDecodingContainer(KeyedContainer<Key>(node: resolved, path: path, decoding: decoding))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        var resolved = node
        if case .raw(let text) = node {
            resolved = (try? ConfigNode(yaml: text)) ?? .sequence([])
        }
        switch resolved {
        case .sequence(let items): return UnkeyedContainer(items: items, path: path, decoding: decoding)
        case .null: return UnkeyedContainer(items: [], path: path, decoding: decoding)
        default:
            decoding.problem(path, "expected a list")
            return UnkeyedContainer(items: [], path: path, decoding: decoding)
        }
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        SingleValue(node: node, path: path, decoding: decoding)
    }
}

struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { stringValue = String(intValue) }
}

struct KeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let node: ConfigNode
    let path: [String]
    let decoding: ConfigDecoding
    var codingPath: [any CodingKey] { path.map { AnyKey($0) } }

    var allKeys: [Key] {
        guard case .mapping(let pairs) = node else { return [] }
        return pairs.compactMap { Key(stringValue: $0.0) }
    }

    private func childPath(_ key: Key) -> [String] { path + [key.stringValue] }

    func contains(_ key: Key) -> Bool {
        let p = childPath(key)
        decoding.noteVisit(p)
        if let child = decoding.node(p, in: node) {
            if case .null = child { return false }
            return true
        }
        return decoding.environmentTouches(p)
    }

    func decodeNil(forKey key: Key) throws -> Bool { !contains(key) }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        let p = childPath(key)
        decoding.noteVisit(p)
        let child = decoding.node(p, in: node) ?? .null
        return try T(from: NodeDecoder(node: child, path: p, decoding: decoding))
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        let p = childPath(key)
        decoding.noteVisit(p)
        return try NodeDecoder(node: decoding.node(p, in: node) ?? .null, path: p, decoding: decoding).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        let p = childPath(key)
        decoding.noteVisit(p)
        return try NodeDecoder(node: decoding.node(p, in: node) ?? .null, path: p, decoding: decoding).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder { NodeDecoder(node: node, path: path, decoding: decoding) }
    func superDecoder(forKey key: Key) throws -> any Decoder {
        NodeDecoder(node: decoding.node(childPath(key), in: node) ?? .null, path: childPath(key), decoding: decoding)
    }
}

struct UnkeyedContainer: UnkeyedDecodingContainer {
    let items: [ConfigNode]
    let path: [String]
    let decoding: ConfigDecoding
    var currentIndex = 0
    var codingPath: [any CodingKey] { path.map { AnyKey($0) } }
    var count: Int? { items.count }
    var isAtEnd: Bool { currentIndex >= items.count }

    init(items: [ConfigNode], path: [String], decoding: ConfigDecoding) {
        self.items = items
        self.path = path
        self.decoding = decoding
    }

    private mutating func nextDecoder() -> NodeDecoder {
        var p = path
        p[p.count - 1] += "[\(currentIndex)]"
        defer { currentIndex += 1 }
        return NodeDecoder(node: items[currentIndex], path: p, decoding: decoding)
    }

    mutating func decodeNil() throws -> Bool {
        if case .null = items[currentIndex] { currentIndex += 1; return true }
        return false
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T { try T(from: nextDecoder()) }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        try nextDecoder().container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer { try nextDecoder().unkeyedContainer() }
    mutating func superDecoder() throws -> any Decoder { nextDecoder() }
}

struct SingleValue: SingleValueDecodingContainer {
    let node: ConfigNode
    let path: [String]
    let decoding: ConfigDecoding
    var codingPath: [any CodingKey] { path.map { AnyKey($0) } }

    func decodeNil() -> Bool {
        if case .null = node { return true }
        return false
    }

    private func text(_ expected: String) -> String? {
        switch node {
        case .scalar(let s), .raw(let s): return s
        case .null: return nil
        default:
            decoding.problem(path, "expected \(expected)")
            return nil
        }
    }

    func decode(_ type: String.Type) throws -> String { text("a string") ?? "" }

    func decode(_ type: Bool.Type) throws -> Bool {
        guard let s = text("true or false") else { return false }
        switch s.lowercased() {
        case "true", "yes", "on", "1": return true
        case "false", "no", "off", "0": return false
        default:
            decoding.problem(path, "expected true or false, got '\(s)'")
            return false
        }
    }

    func decode(_ type: Int.Type) throws -> Int {
        guard let s = text("an integer") else { return 0 }
        guard let value = Int(s.replacingUnderscores) else {
            decoding.problem(path, "expected an integer, got '\(s)'")
            return 0
        }
        return value
    }

    func decode(_ type: Double.Type) throws -> Double {
        guard let s = text("a number") else { return 0 }
        guard let value = Double(s.replacingUnderscores) else {
            decoding.problem(path, "expected a number, got '\(s)'")
            return 0
        }
        return value
    }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        if T.self == Int64.self { return Int64(try decode(Int.self)) as! T }
        if T.self == Float.self { return Float(try decode(Double.self)) as! T }
        return try T(from: NodeDecoder(node: node, path: path, decoding: decoding))
    }
}

extension String {
    var replacingUnderscores: String { String(filter { $0 != "_" }) }
}

extension KeyedDecodingContainer {
    /// The value at `key`, or `fallback` when the key is absent.
    func value<T: Decodable>(_ key: Key, _ fallback: T) throws -> T {
        try decodeIfPresent(T.self, forKey: key) ?? fallback
    }
}
