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
        try await claim(userIDs.map { (campaignID, $0) }, owner: owner)
    }

    public func markSent(campaignID: String, userIDs: [String]) async throws {
        try await markSent(userIDs.map { (campaignID, $0) })
    }

    /// Drops this owner's claims (the sends failed), so a later attempt can claim again.
    public func release(campaignID: String, userIDs: [String], owner: String) async throws {
        try await release(userIDs.map { (campaignID, $0) }, owner: owner)
    }

    /// Claims (campaign, user) pairs of any campaigns: one script call per
    /// campaign (its own hash tag), all in one pipelined round trip.
    public func claim(_ items: [(campaignID: String, userID: String)], owner: String) async throws -> [Claim] {
        let replies = try await runGrouped(Self.claimScript, items, arguments: [owner, Int(inFlightTTL.milliseconds)])
        var claims = [Claim](repeating: .claimed, count: items.count)
        for (indices, reply) in replies {
            guard let values = reply.array, values.count == indices.count else {
                throw RedisError(.unexpectedReply, "claim script answered \(reply)")
            }
            for (index, value) in zip(indices, values) where value.int == 2 { claims[index] = .alreadySent }
        }
        return claims
    }

    public func markSent(_ items: [(campaignID: String, userID: String)]) async throws {
        _ = try await runGrouped(Self.markSentScript, items, arguments: [Int(sentTTL.milliseconds)])
    }

    public func release(_ items: [(campaignID: String, userID: String)], owner: String) async throws {
        _ = try await runGrouped(Self.releaseScript, items, arguments: [owner])
    }

    /// Runs `script` once per campaign of `items` (pipelined); returns each
    /// call's positions in `items` with its reply.
    func runGrouped(_ script: RedisScript, _ items: [(campaignID: String, userID: String)],
                    arguments: [RedisArgument]) async throws -> [(indices: [Int], reply: RedisValue)] {
        guard !items.isEmpty else { return [] }
        var order: [String] = []
        var groups: [String: [Int]] = [:]
        for (index, item) in items.enumerated() {
            if groups[item.campaignID] == nil { order.append(item.campaignID) }
            groups[item.campaignID, default: []].append(index)
        }
        let calls = order.map { campaign in
            (keys: groups[campaign]!.map { key(campaignID: campaign, userID: items[$0].userID) }, arguments: arguments)
        }
        let replies = calls.count == 1
            ? [try await redis.run(script, keys: calls[0].keys, arguments: arguments)]
            : try await redis.run(script, calls: calls)
        return zip(order, replies).map { (groups[$0.0]!, $0.1) }
    }
}
