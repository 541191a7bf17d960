import ReachCore

/// Per-(campaign, user) send claims in Redis, one Lua call per batch.
///
/// A key is claimed before a send (value: the claiming runner, short TTL),
/// turned into `sent` after the provider accepted it (long TTL), and released
/// when the send failed. A key's hash tag is its *scope*: the campaign id, or
/// for a campaign cut into shards one of its buckets (`KeySpread`); a batch
/// runs one script per scope, so every script touches one Redis Cluster slot. PostgreSQL's `reach.deliveries` stays the
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

    /// `scope`: the campaign id, or `<campaign>#<bucket>` (`KeySpread.scope`).
    public func key(scope: String, userID: String) -> String {
        "\(prefix){idem:\(scope)}:\(userID)"
    }

    public func key(campaignID: String, userID: String) -> String { key(scope: campaignID, userID: userID) }

    // KEYS[1]: the campaign's fence key; the rest: one key per user.
    // ARGV: claim value, claim TTL (ms), epoch (0: an unfenced caller — a
    // retry or a trigger send, which no campaign lease covers).
    // The caller holds the campaign's runner lease, so a claim left by an
    // earlier holder is taken over rather than waited out; a caller whose
    // epoch is older than one already seen is refused (-1) and claims nothing.
    static let claimScript = RedisScript("""
        local epoch = tonumber(ARGV[3])
        if epoch > 0 then
          local seen = tonumber(redis.call('GET', KEYS[1]) or '0')
          if epoch < seen then return -1 end
          if epoch > seen then redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4]) end
        end
        local out = {}
        for i = 2, #KEYS do
          if redis.call('GET', KEYS[i]) == 'sent' then
            out[i - 1] = 2
          else
            redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2])
            out[i - 1] = 1
          end
        end
        return out
        """)

    /// The key that remembers the newest epoch which claimed in a scope
    /// under a lease: the campaign's, or one shard's (`#<shard>` after the tag;
    /// user keys always carry a `:` after the tag, these never do).
    public func fenceKey(scope: String, shard: Int? = nil) -> String {
        "\(prefix){idem:\(scope)}" + (shard.map { "#\($0)" } ?? "")
    }

    public func fenceKey(campaignID: String) -> String { fenceKey(scope: campaignID) }

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

    /// Claims (scope, user) pairs of any campaigns: one script call per
    /// scope (its own hash tag), all in one pipelined round trip. With a
    /// `fence` (the claimer holds that campaign's or shard's lease; `items`
    /// are of its campaign) the claim is refused with `FencedOut` once a later
    /// epoch of that lease has claimed in the scope; the value stored is the fence's token.
    public func claim(_ items: [(scope: String, userID: String)], owner: String, fence: Fence? = nil) async throws -> [Claim] {
        let value = fence?.token ?? owner
        let replies = try await runGrouped(Self.claimScript, items, fenced: true, shard: fence?.shard,
                                           arguments: [value, Int(inFlightTTL.milliseconds), fence?.epoch ?? 0, Int(sentTTL.milliseconds)])
        var claims = [Claim](repeating: .claimed, count: items.count)
        for (indices, reply) in replies {
            if let fence, reply.int == -1 { throw FencedOut("idempotency claim", fence: fence) }
            guard let values = reply.array, values.count == indices.count else {
                throw RedisError(.unexpectedReply, "claim script answered \(reply)")
            }
            for (index, value) in zip(indices, values) where value.int == 2 { claims[index] = .alreadySent }
        }
        return claims
    }

    public func markSent(_ items: [(scope: String, userID: String)]) async throws {
        _ = try await runGrouped(Self.markSentScript, items, arguments: [Int(sentTTL.milliseconds)])
    }

    /// `owner` is the claim's value: the owner, or the fence token it claimed with.
    public func release(_ items: [(scope: String, userID: String)], owner: String) async throws {
        _ = try await runGrouped(Self.releaseScript, items, arguments: [owner])
    }

    /// Runs `script` once per scope of `items` (pipelined); returns each
    /// call's positions in `items` with its reply. `fenced` puts the scope's
    /// fence key (of the campaign's lease, or of lease `shard`) first.
    func runGrouped(_ script: RedisScript, _ items: [(scope: String, userID: String)], fenced: Bool = false, shard: Int? = nil,
                    arguments: [RedisArgument]) async throws -> [(indices: [Int], reply: RedisValue)] {
        guard !items.isEmpty else { return [] }
        var order: [String] = []
        var groups: [String: [Int]] = [:]
        for (index, item) in items.enumerated() {
            if groups[item.scope] == nil { order.append(item.scope) }
            groups[item.scope, default: []].append(index)
        }
        let calls = order.map { scope in
            (keys: (fenced ? [fenceKey(scope: scope, shard: shard)] : []) + groups[scope]!.map { key(scope: scope, userID: items[$0].userID) },
             arguments: arguments)
        }
        let replies = calls.count == 1
            ? [try await redis.run(script, keys: calls[0].keys, arguments: arguments)]
            : try await redis.run(script, calls: calls)
        return zip(order, replies).map { (groups[$0.0]!, $0.1) }
    }
}
