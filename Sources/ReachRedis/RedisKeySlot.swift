/// Redis Cluster key slots: CRC16 (XMODEM) of the key, or of its hash tag,
/// modulo 16384.
public enum RedisKeySlot {
    public static let count = 16384

    /// The slot of a key. When the key holds a `{`, a later `}` and at least
    /// one byte between them, only those bytes are hashed (the hash tag), so
    /// `a{user1}b` and `{user1}` share a slot.
    public static func slot(of key: some Collection<UInt8>) -> Int {
        let bytes = Array(key)
        var hashed = bytes[...]
        if let open = bytes.firstIndex(of: UInt8(ascii: "{")),
           let close = bytes[(open + 1)...].firstIndex(of: UInt8(ascii: "}")),
           close > open + 1 {
            hashed = bytes[(open + 1)..<close]
        }
        return Int(crc16(hashed) & 0x3FFF)
    }

    public static func slot(of key: String) -> Int { slot(of: Array(key.utf8)) }

    /// CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, no reflection.
    static func crc16(_ bytes: some Collection<UInt8>) -> UInt16 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc = (crc << 8) ^ table[Int(UInt8(truncatingIfNeeded: crc >> 8) ^ byte)]
        }
        return crc
    }

    private static let table: [UInt16] = (0..<256).map { value in
        var crc = UInt16(value) << 8
        for _ in 0..<8 {
            crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1
        }
        return crc
    }
}

/// Where a command's keys are, as far as cluster routing needs to know.
enum RedisCommandKeys {
    /// Commands a cluster client cannot route (transactions over one
    /// connection, database selection, keyspace-wide scans, subscriptions,
    /// stream reads whose keys follow STREAMS).
    static let refusedInCluster: Set<String> = [
        "MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH", "SELECT", "SWAPDB", "MOVE",
        "KEYS", "SCAN", "RANDOMKEY", "FLUSHDB", "FLUSHALL", "DBSIZE",
        "SUBSCRIBE", "PSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "SSUBSCRIBE", "SUNSUBSCRIBE", "MONITOR",
        "XREAD", "XREADGROUP",
        "ASKING", "READONLY", "READWRITE", "AUTH", "HELLO", "QUIT", "RESET",
    ]

    /// Commands without keys: any node answers them (PUBLISH is broadcast
    /// over the cluster bus to every node's subscribers).
    static let keyless: Set<String> = [
        "PING", "ECHO", "PUBLISH", "CONFIG", "SCRIPT", "INFO", "TIME", "CLUSTER", "COMMAND",
        "CLIENT", "LASTSAVE", "SLOWLOG", "LATENCY", "ROLE", "WAIT", "FUNCTION",
    ]

    /// Commands that only read: repeating one after a connection broke
    /// mid-call cannot change anything.
    static let readOnly: Set<String> = [
        "GET", "MGET", "EXISTS", "STRLEN", "GETRANGE", "TTL", "PTTL", "TYPE",
        "HGET", "HGETALL", "HMGET", "HEXISTS", "HLEN", "HKEYS", "HVALS",
        "ZCARD", "ZRANGE", "ZRANGEBYSCORE", "ZREVRANGE", "ZREVRANGEBYSCORE", "ZSCORE", "ZMSCORE", "ZRANK", "ZCOUNT",
        "LRANGE", "LLEN", "LINDEX", "SCARD", "SMEMBERS", "SISMEMBER",
        "PING", "ECHO", "INFO", "TIME",
    ]

    static func name(_ command: RedisCommand) -> String { command.name.uppercased() }

    /// The keys of a command (possibly none).
    static func keys(_ command: RedisCommand) throws -> [[UInt8]] {
        let name = name(command)
        let args = command.arguments
        if refusedInCluster.contains(name) {
            throw RedisError(.refused, "\(name) cannot be sent through a cluster client")
        }
        if keyless.contains(name) { return [] }
        switch name {
        case "EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO":
            guard args.count >= 3, let n = Int(String(decoding: args[2], as: UTF8.self)), n >= 0, args.count >= 3 + n else {
                throw RedisError(.refused, "\(name) needs a script, a key count and that many keys")
            }
            return Array(args[3..<(3 + n)])
        case "DEL", "UNLINK", "EXISTS", "MGET", "TOUCH", "SINTER", "SUNION", "SDIFF", "PFCOUNT":
            return Array(args.dropFirst())
        case "MSET", "MSETNX":
            return stride(from: 1, to: args.count, by: 2).map { args[$0] }
        case "BLPOP", "BRPOP", "BZPOPMIN", "BZPOPMAX":
            return Array(args.dropFirst().dropLast())
        case "OBJECT", "MEMORY":
            return args.count > 2 ? [args[2]] : []
        default:
            return args.count > 1 ? [args[1]] : []
        }
    }

    /// The one slot of a command's keys; nil when it has none. Keys of more
    /// than one slot are refused before anything is sent.
    static func slot(_ command: RedisCommand) throws -> Int? {
        try slot(ofKeys: keys(command), what: name(command))
    }

    static func slot(ofKeys keys: [[UInt8]], what: String) throws -> Int? {
        guard let first = keys.first else { return nil }
        let slot = RedisKeySlot.slot(of: first)
        for key in keys.dropFirst() {
            let other = RedisKeySlot.slot(of: key)
            if other != slot {
                throw RedisError(.refused, "\(what) has keys in cluster slots \(slot) and \(other); all keys of one command or script must share a hash tag")
            }
        }
        return slot
    }
}
