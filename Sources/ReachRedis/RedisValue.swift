/// A reply from Redis, copied out of hiredis' reply object.
public enum RedisValue: Sendable, Equatable, CustomStringConvertible {
    case null
    case string([UInt8])
    case status(String)
    case integer(Int64)
    case array([RedisValue])
    case error(String)

    public var string: String? {
        switch self {
        case .string(let bytes): String(decoding: bytes, as: UTF8.self)
        case .status(let s): s
        case .integer(let i): String(i)
        default: nil
        }
    }

    public var int: Int64? {
        switch self {
        case .integer(let i): i
        case .string(let bytes): Int64(String(decoding: bytes, as: UTF8.self))
        default: nil
        }
    }

    public var array: [RedisValue]? {
        if case .array(let values) = self { return values }
        return nil
    }

    public var isNull: Bool { self == .null }

    public var errorMessage: String? {
        if case .error(let message) = self { return message }
        return nil
    }

    public var description: String {
        switch self {
        case .null: "nil"
        case .string(let b): "\"\(String(decoding: b, as: UTF8.self))\""
        case .status(let s): s
        case .integer(let i): "(integer) \(i)"
        case .array(let a): "[" + a.map(\.description).joined(separator: ", ") + "]"
        case .error(let e): "(error) \(e)"
        }
    }
}

/// One command: its name and arguments as bytes, kept in one buffer (a
/// script call with 5 000 user ids is one allocation, not 5 000).
public struct RedisCommand: Sendable, Equatable {
    /// Every argument's bytes, one after the other (the name first).
    public private(set) var bytes: [UInt8]
    /// Each argument's length in `bytes`.
    public private(set) var lengths: [Int]

    public init(_ name: String, _ arguments: [RedisArgument]) {
        bytes = []
        lengths = []
        lengths.reserveCapacity(arguments.count + 1)
        bytes.append(contentsOf: name.utf8)
        lengths.append(bytes.count)
        for argument in arguments {
            let before = bytes.count
            argument.appendRedisBytes(to: &bytes)
            lengths.append(bytes.count - before)
        }
    }

    public init(_ name: String, _ arguments: RedisArgument...) {
        self.init(name, arguments)
    }

    /// The arguments one by one (the name first); cluster routing reads the keys from it.
    public var arguments: [[UInt8]] {
        var offset = 0
        return lengths.map { length in
            defer { offset += length }
            return Array(bytes[offset..<(offset + length)])
        }
    }

    public var name: String { String(decoding: bytes.prefix(lengths[0]), as: UTF8.self) }
}

public protocol RedisArgument: Sendable {
    var redisBytes: [UInt8] { get }
    /// Appends the bytes (without building an array of their own).
    func appendRedisBytes(to bytes: inout [UInt8])
}

extension RedisArgument {
    public func appendRedisBytes(to bytes: inout [UInt8]) { bytes.append(contentsOf: redisBytes) }
}

extension String: RedisArgument {
    public var redisBytes: [UInt8] { Array(utf8) }
    public func appendRedisBytes(to bytes: inout [UInt8]) { bytes.append(contentsOf: utf8) }
}
extension Substring: RedisArgument {
    public var redisBytes: [UInt8] { Array(utf8) }
    public func appendRedisBytes(to bytes: inout [UInt8]) { bytes.append(contentsOf: utf8) }
}
extension Int: RedisArgument { public var redisBytes: [UInt8] { Array(String(self).utf8) } }
extension Int64: RedisArgument { public var redisBytes: [UInt8] { Array(String(self).utf8) } }
extension Double: RedisArgument { public var redisBytes: [UInt8] { Array(String(self).utf8) } }
extension Array: RedisArgument where Element == UInt8 { public var redisBytes: [UInt8] { self } }
