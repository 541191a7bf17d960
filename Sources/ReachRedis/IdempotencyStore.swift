/// Per-(campaign, user) send claims in Redis, one Lua call per batch.
///
/// A key is claimed before a send (value: the claiming runner, short TTL),
/// turned into `sent` after the provider accepted it (long TTL), and released
/// when the send failed. All keys of one campaign share a hash tag, so a batch
/// touches one Redis Cluster slot. PostgreSQL's `reach.deliveries` stays the
/// durable truth; these keys close the window between "sent" and "recorded".
public struct IdempotencyStore: Sendable {
    public enum Claim: Sendable, Equatable {
        /// Ours to send now.
        case claimed
        /// Already sent (possibly by a runner that died before recording it).
        case alreadySent
    }

    public let redis: RedisClient
    public let prefix: String
    public let inFlightTTL: Duration
    public let sentTTL: Duration

    public init(redis: RedisClient, prefix: String, inFlightTTL: Duration = .seconds(60), sentTTL: Duration = .seconds(7 * 86_400)) {
        self.redis = redis
        self.prefix = prefix
        self.inFlightTTL = inFlightTTL
        self.sentTTL = sentTTL
    }

    public func key(campaignID: String, userID: String) -> String {
        "\(prefix){idem:\(campaignID)}:\(userID)"
    }

    // The caller holds the campaign's runner lease, so a claim left by another
    // (dead) runner is taken over rather than waited out.
    static let claimScript = RedisScript("""
        local out = {}
        for i, key in ipairs(KEYS) do
          if redis.call('GET', key) == 'sent' then
            out[i] = 2
          else
            redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
            out[i] = 1
          end
        end
        return out
        """)

    static let markSentScript = RedisScript("""
        for _, key in ipairs(KEYS) do redis.call('SET', key, 'sent', 'PX', ARGV[1]) end
        return #KEYS
        """)

    static let releaseScript = RedisScript("""
        local n = 0
        for _, key in ipairs(KEYS) do
          if redis.call('GET', key) == ARGV[1] then redis.call('DEL', key); n = n + 1 end
        end
        return n
        """)

    /// Claims every user of the batch for `owner`; one round trip.
    public func claim(campaignID: String, userIDs: [String], owner: String) async throws -> [Claim] {
        guard !userIDs.isEmpty else { return [] }
        let keys = userIDs.map { key(campaignID: campaignID, userID: $0) }
        let reply = try await redis.run(Self.claimScript, keys: keys, arguments: [owner, Int(inFlightTTL.milliseconds)])
        guard let values = reply.array, values.count == keys.count else {
            throw RedisError(.unexpectedReply, "claim script answered \(reply)")
        }
        return values.map { $0.int == 2 ? .alreadySent : .claimed }
    }

    public func markSent(campaignID: String, userIDs: [String]) async throws {
        guard !userIDs.isEmpty else { return }
        try await redis.run(Self.markSentScript, keys: userIDs.map { key(campaignID: campaignID, userID: $0) },
                            arguments: [Int(sentTTL.milliseconds)])
    }

    /// Drops this owner's claims (the sends failed), so a later attempt can claim again.
    public func release(campaignID: String, userIDs: [String], owner: String) async throws {
        guard !userIDs.isEmpty else { return }
        try await redis.run(Self.releaseScript, keys: userIDs.map { key(campaignID: campaignID, userID: $0) }, arguments: [owner])
    }
}
