/// Per-user frequency caps over a rolling window, checked and counted in one
/// atomic Lua call per user (pipelined per batch; each call touches one user's
/// keys, so one Redis Cluster slot). A retry of a message already counted is
/// not counted twice.
public struct FrequencyCap: Sendable {
    public let redis: RedisClient
    public let prefix: String
    public let window: Duration

    public init(redis: RedisClient, prefix: String, window: Duration = .seconds(86_400)) {
        self.redis = redis
        self.prefix = prefix
        self.window = window
    }

    // KEYS: all channels, this channel. ARGV: now, window, max overall, max channel (0: none), message id.
    static let script = RedisScript("""
        local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
        local maxAll, maxChannel, id = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
        redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
        redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
        if redis.call('ZSCORE', KEYS[1], id) then return 1 end
        if maxAll > 0 and redis.call('ZCARD', KEYS[1]) >= maxAll then return 0 end
        if maxChannel > 0 and redis.call('ZCARD', KEYS[2]) >= maxChannel then return 0 end
        redis.call('ZADD', KEYS[1], now, id)
        redis.call('ZADD', KEYS[2], now, id)
        redis.call('PEXPIRE', KEYS[1], window)
        redis.call('PEXPIRE', KEYS[2], window)
        return 1
        """)

    static let releaseScript = RedisScript("""
        redis.call('ZREM', KEYS[1], ARGV[1])
        redis.call('ZREM', KEYS[2], ARGV[1])
        return 1
        """)

    func keys(user: String, channel: String) -> [String] {
        let tag = "\(prefix){fc:\(user)}"
        return [tag, "\(tag):\(channel)"]
    }

    /// For each (user, channel, message id): true when it may be sent (and is now counted).
    public func admit(_ sends: [(userID: String, channel: String, messageID: String)], maxOverall: Int, maxPerChannel: [String: Int],
                      nowMs: Int64) async throws -> [Bool] {
        guard !sends.isEmpty else { return [] }
        let replies = try await redis.run(Self.script, calls: sends.map { s in
            (keys(user: s.userID, channel: s.channel),
             [nowMs, Int(window.nanoseconds / 1_000_000), maxOverall, maxPerChannel[s.channel] ?? 0, s.messageID] as [RedisArgument])
        })
        return try replies.map { reply in
            if let error = reply.errorMessage { throw RedisError(.server, error) }
            return reply.int == 1
        }
    }

    /// Gives back the counts of messages that will never be sent (dead).
    public func release(_ sends: [(userID: String, channel: String, messageID: String)]) async throws {
        guard !sends.isEmpty else { return }
        _ = try await redis.run(Self.releaseScript, calls: sends.map { s in
            (keys(user: s.userID, channel: s.channel), [s.messageID] as [RedisArgument])
        })
    }
}
