/// Cluster-wide rate limits per channel: one token bucket per key in Redis,
/// shared by every instance. A batch takes its tokens at once and may leave
/// the bucket in debt; the caller waits out the debt before sending, so over
/// any window the rate is at most `rate × window + burst`.
public struct RateLimiter: Sendable {
    public let redis: RedisClient
    public let prefix: String

    public init(redis: RedisClient, prefix: String) {
        self.redis = redis
        self.prefix = prefix
    }

    // KEYS[1]: bucket. ARGV: now (ms), rate (per second), burst (tokens), n.
    // Returns how long to wait (ms) before the n tokens are really there.
    static let script = RedisScript("""
        local now, rate, burst, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
        local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
        local tokens, at = tonumber(state[1]), tonumber(state[2])
        if tokens == nil then tokens, at = burst, now end
        if now > at then tokens = math.min(burst, tokens + (now - at) * rate / 1000); at = now end
        tokens = tokens - n
        redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(at))
        redis.call('PEXPIRE', KEYS[1], 60000)
        if tokens >= 0 then return 0 end
        return math.ceil(-tokens * 1000 / rate)
        """)

    /// Takes `count` tokens from `key`'s bucket; returns how long to wait before using them.
    public func acquire(_ key: String, count: Int, ratePerSecond: Int, nowMs: Int64, burstSeconds: Double = 0.2) async throws -> Duration {
        let burst = max(1.0, Double(ratePerSecond) * burstSeconds)
        let reply = try await redis.run(Self.script, keys: ["\(prefix){rl:\(key)}"],
                                        arguments: [nowMs, ratePerSecond, burst, count])
        return .milliseconds(reply.int ?? 0)
    }

    // KEYS[1]: bucket. ARGV: n, burst. Gives tokens back (never above the burst).
    static let refundScript = RedisScript("""
        local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens'))
        if tokens == nil then return 0 end
        redis.call('HSET', KEYS[1], 'tokens', tostring(math.min(tonumber(ARGV[2]), tokens + tonumber(ARGV[1]))))
        return 1
        """)

    /// Gives back `count` tokens a batch took but will not use (its campaign
    /// was paused or cancelled while it waited out the bucket's debt).
    public func refund(_ key: String, count: Int, ratePerSecond: Int, burstSeconds: Double = 0.2) async throws {
        let burst = max(1.0, Double(ratePerSecond) * burstSeconds)
        _ = try await redis.run(Self.refundScript, keys: ["\(prefix){rl:\(key)}"], arguments: [count, burst])
    }
}
