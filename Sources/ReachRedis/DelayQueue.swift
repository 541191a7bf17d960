import ReachCore

/// A crash-safe delay queue in Redis, shared by every instance.
///
/// Each shard is three keys under one hash tag (one Redis Cluster slot):
/// `due` (sorted set: id → due time, ms), `inflight` (sorted set: id → lease
/// expiry, ms) and `items` (hash: id → payload, plus `id#token` → the claim's
/// token). `claim` atomically returns expired leases to `due` and moves due
/// items into `inflight` under a lease; `ack` deletes an item once its work is
/// durable, but only for the claim that still holds it. An instance killed
/// between claim and ack loses nothing: the lease runs out and another
/// scheduler claims the item again. Delivery is at least once; the work an
/// item triggers must be idempotent (it is: sends are guarded by idempotency keys).
public struct DelayQueue: Sendable {
    /// An item to put in the queue: its id (one item per id), what it asks for, and when (ms since the epoch).
    public typealias NewItem = (id: String, payload: String, dueMs: Int64)

    public struct Item: Sendable, Equatable {
        public var id: String
        public var payload: String
        /// Identifies this claim; pass it back to `ack`.
        public var token: String
        public var shard: Int
    }

    public let redis: RedisClient
    public let prefix: String
    public let shards: Int
    public let name: String

    public init(redis: RedisClient, prefix: String, name: String = "dq", shards: Int = 4) {
        precondition(shards >= 1, "a queue needs at least one shard")
        self.redis = redis
        self.prefix = prefix
        self.name = name
        self.shards = shards
    }

    func keys(_ shard: Int) -> [String] {
        let tag = "\(prefix){\(name):\(shard)}"
        return ["\(tag):due", "\(tag):inflight", "\(tag):items"]
    }

    /// The shard of an id: stable (FNV-1a), so rescheduling an id hits the same keys.
    public func shard(of id: String) -> Int {
        Int(StableHash.fnv1a(id) % UInt64(shards))
    }

    // Adds an item or replaces it, in flight or not: a handler that reschedules
    // the item it holds (a retry) drops its own claim, so its later ack is a no-op.
    static let scheduleScript = RedisScript("""
        local due, inflight, items = KEYS[1], KEYS[2], KEYS[3]
        for i = 1, #ARGV, 3 do
          local id, at, payload = ARGV[i], ARGV[i + 1], ARGV[i + 2]
          redis.call('HSET', items, id, payload)
          redis.call('ZREM', inflight, id)
          redis.call('HDEL', items, id .. '#token')
          redis.call('ZADD', due, at, id)
        end
        return #ARGV / 3
        """)

    // Like scheduleScript, but leaves an id that is queued or in flight alone.
    // Returns how many were added.
    static let scheduleMissingScript = RedisScript("""
        local due, items = KEYS[1], KEYS[3]
        local n = 0
        for i = 1, #ARGV, 3 do
          local id, at, payload = ARGV[i], ARGV[i + 1], ARGV[i + 2]
          if redis.call('HEXISTS', items, id) == 0 then
            redis.call('HSET', items, id, payload)
            redis.call('ZADD', due, at, id)
            n = n + 1
          end
        end
        return n
        """)

    // ARGV: now (ms), limit, lease (ms), token prefix. Returns id, payload, token triples.
    // The due items are the lowest ranks of `due`: they leave it with one
    // ZREMRANGEBYRANK, their payloads come with one HMGET, and their leases and
    // tokens go in with one ZADD and one HSET, so a claim of 1 000 is a handful of
    // commands, not four per item (`limit` stays ≤ 1 000: Lua's unpack is bounded).
    static let claimScript = RedisScript("""
        local due, inflight, items = KEYS[1], KEYS[2], KEYS[3]
        local now, limit, lease, token = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
        local expired = redis.call('ZRANGEBYSCORE', inflight, '-inf', now, 'LIMIT', 0, 1000)
        for _, id in ipairs(expired) do
          redis.call('ZREM', inflight, id)
          redis.call('HDEL', items, id .. '#token')
          redis.call('ZADD', due, now, id)
        end
        local ids = redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, limit)
        if #ids == 0 then return {} end
        redis.call('ZREMRANGEBYRANK', due, 0, #ids - 1)
        local payloads = redis.call('HMGET', items, unpack(ids))
        local out, leases, tokens = {}, {}, {}
        local expiry = now + lease
        for i, id in ipairs(ids) do
          local payload = payloads[i]
          if payload then
            local t = token .. ':' .. i
            leases[#leases + 1] = expiry
            leases[#leases + 1] = id
            tokens[#tokens + 1] = id .. '#token'
            tokens[#tokens + 1] = t
            out[#out + 1] = id
            out[#out + 1] = payload
            out[#out + 1] = t
          end
        end
        if #leases > 0 then
          redis.call('ZADD', inflight, unpack(leases))
          redis.call('HSET', items, unpack(tokens))
        end
        return out
        """)

    // ARGV: id, token pairs. Deletes each item still held by that token: one
    // HMGET for the tokens, one ZREM and one HDEL for the items still held.
    static let ackScript = RedisScript("""
        local inflight, items = KEYS[2], KEYS[3]
        local fields = {}
        for i = 1, #ARGV, 2 do fields[#fields + 1] = ARGV[i] .. '#token' end
        local held = redis.call('HMGET', items, unpack(fields))
        local ids, gone = {}, {}
        for i = 1, #ARGV, 2 do
          local id = ARGV[i]
          if held[(i + 1) / 2] == ARGV[i + 1] then
            ids[#ids + 1] = id
            gone[#gone + 1] = id
            gone[#gone + 1] = id .. '#token'
          end
        end
        if #ids > 0 then
          redis.call('ZREM', inflight, unpack(ids))
          redis.call('HDEL', items, unpack(gone))
        end
        return #ids
        """)

    // ARGV: now (ms), lease (ms), then id, token pairs. Extends the lease of
    // each item its claim still holds; returns how many.
    static let extendScript = RedisScript("""
        local inflight, items = KEYS[2], KEYS[3]
        local expiry = tonumber(ARGV[1]) + tonumber(ARGV[2])
        local n = 0
        for i = 3, #ARGV, 2 do
          local id, token = ARGV[i], ARGV[i + 1]
          if redis.call('HGET', items, id .. '#token') == token then
            redis.call('ZADD', inflight, 'XX', expiry, id)
            n = n + 1
          end
        end
        return n
        """)

    /// Renews the lease of claimed items that are still being worked on, so a
    /// slow handler (rate-limit waits, a dependency outage) keeps them; returns
    /// how many were still held by their claim.
    @discardableResult
    public func extend(_ items: [Item], nowMs: Int64, lease: Duration) async throws -> Int {
        var held = 0
        for (shard, group) in Dictionary(grouping: items, by: \.shard) {
            let arguments: [RedisArgument] = [nowMs, Int(lease.nanoseconds / 1_000_000)] + group.flatMap { [$0.id, $0.token] as [RedisArgument] }
            held += Int(try await redis.run(Self.extendScript, keys: keys(shard), arguments: arguments).int ?? 0)
        }
        return held
    }

    /// Schedules items (id → payload, due at `dueMs` since the epoch); rescheduling an id replaces it.
    public func schedule(_ items: [NewItem]) async throws {
        for (shard, group) in Dictionary(grouping: items, by: { shard(of: $0.id) }) {
            for chunk in stride(from: 0, to: group.count, by: 1000).map({ Array(group[$0..<min($0 + 1000, group.count)]) }) {
                let arguments: [RedisArgument] = chunk.flatMap { [$0.id, $0.dueMs, $0.payload] as [RedisArgument] }
                try await redis.run(Self.scheduleScript, keys: keys(shard), arguments: arguments)
            }
        }
    }

    /// Schedules only the items whose id is neither waiting nor in flight (a
    /// queued item keeps its payload and due time); returns how many were added.
    @discardableResult
    public func scheduleMissing(_ items: [NewItem]) async throws -> Int {
        var added = 0
        for (shard, group) in Dictionary(grouping: items, by: { shard(of: $0.id) }) {
            for chunk in stride(from: 0, to: group.count, by: 1000).map({ Array(group[$0..<min($0 + 1000, group.count)]) }) {
                let arguments: [RedisArgument] = chunk.flatMap { [$0.id, $0.dueMs, $0.payload] as [RedisArgument] }
                added += Int(try await redis.run(Self.scheduleMissingScript, keys: keys(shard), arguments: arguments).int ?? 0)
            }
        }
        return added
    }

    public func schedule(id: String, payload: String, dueMs: Int64) async throws {
        try await schedule([(id, payload, dueMs)])
    }

    /// Claims up to `limit` (at most 1 000) due items of one shard under a lease of `lease`.
    public func claim(shard: Int, nowMs: Int64, limit: Int, lease: Duration, owner: String) async throws -> [Item] {
        let reply = try await redis.run(Self.claimScript, keys: keys(shard),
                                        arguments: [nowMs, min(limit, 1_000), Int(lease.nanoseconds / 1_000_000), owner])
        guard let values = reply.array, values.count % 3 == 0 else {
            throw RedisError(.unexpectedReply, "claim script answered \(reply)")
        }
        return stride(from: 0, to: values.count, by: 3).map { i in
            Item(id: values[i].string ?? "", payload: values[i + 1].string ?? "", token: values[i + 2].string ?? "", shard: shard)
        }
    }

    /// Acknowledges claimed items; returns how many were still held by their claim.
    @discardableResult
    public func ack(_ items: [Item]) async throws -> Int {
        var acked = 0
        for (shard, group) in Dictionary(grouping: items, by: \.shard) {
            for start in stride(from: 0, to: group.count, by: 1_000) {
                let arguments: [RedisArgument] = group[start..<min(start + 1_000, group.count)].flatMap { [$0.id, $0.token] as [RedisArgument] }
                acked += Int(try await redis.run(Self.ackScript, keys: keys(shard), arguments: arguments).int ?? 0)
            }
        }
        return acked
    }

    /// Items waiting or in flight, over all shards.
    public func depth() async throws -> Int {
        var commands: [RedisCommand] = []
        for shard in 0..<shards {
            let k = keys(shard)
            commands.append(RedisCommand("ZCARD", k[0]))
            commands.append(RedisCommand("ZCARD", k[1]))
        }
        return try await redis.pipeline(commands).reduce(0) { $0 + Int($1.int ?? 0) }
    }

    /// The earliest due time in a shard (ms), if anything waits there.
    public func nextDue(shard: Int) async throws -> Int64? {
        let reply = try await redis.send("ZRANGE", keys(shard)[0], 0, 0, "WITHSCORES")
        guard let values = reply.array, values.count == 2, let score = values[1].string else { return nil }
        return Int64(Double(score) ?? 0)
    }
}
