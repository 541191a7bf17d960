import ReachCore

/// Per-(campaign, user) sent marks in Redis, one Lua call per batch.
///
/// Each key *scope* — the campaign id, or for a campaign cut into shards one
/// of its buckets (`KeySpread`) — has one hash, `<prefix>{idem:<scope>}:sent`,
/// with a field per user whose message a provider accepted, and a fence key,
/// `<prefix>{idem:<scope>}` (`#<shard>` after it for a shard's lease).
///
/// Before a send the batch is *claimed*: one script per scope checks the fence
/// (a caller whose lease epoch is older than one already seen is refused and
/// learns nothing) and reads which users are marked sent already (their sender
/// died before recording it): those are recorded, not resent. After the
/// provider accepts a batch, one script marks its users sent and keeps the hash
/// for `sentTTL`. So a message costs one hash field read and one write, both
/// inside one call per batch; nothing is written for a message that is not sent,
/// so there is nothing to release. A scope's keys share its hash tag: every
/// script touches one Redis Cluster slot. PostgreSQL's `reach.deliveries` stays
/// the durable truth; these marks close the window between "sent" and "recorded".
public struct IdempotencyStore: Sendable {
    public enum Claim: Sendable, Equatable {
        /// Ours to send now.
        case claimed
        /// Already sent (possibly by a runner that died before recording it).
        case alreadySent
    }

    public let redis: RedisClient
    public let prefix: String
    public let sentTTL: Duration

    public init(redis: RedisClient, prefix: String, sentTTL: Duration = .seconds(7 * 86_400)) {
        self.redis = redis
        self.prefix = prefix
        self.sentTTL = sentTTL
    }

    /// The hash of a scope's sent marks (one field per user).
    public func sentKey(scope: String) -> String {
        "\(prefix){idem:\(scope)}:sent"
    }

    public func sentKey(campaignID: String) -> String { sentKey(scope: campaignID) }

    /// The key that remembers the newest epoch which claimed in a scope
    /// under a lease: the campaign's, or one shard's (`#<shard>` after the tag).
    public func fenceKey(scope: String, shard: Int? = nil) -> String {
        "\(prefix){idem:\(scope)}" + (shard.map { "#\($0)" } ?? "")
    }

    public func fenceKey(campaignID: String) -> String { fenceKey(scope: campaignID) }

    // KEYS[1]: the scope's fence key, KEYS[2]: its sent hash. ARGV[1]: the
    // caller's epoch (0: an unfenced caller — a retry or a trigger send, which no
    // campaign lease covers), ARGV[2]: the fence key's TTL (ms), ARGV[3…]: users.
    // The caller holds the lease, so marks of an earlier holder are read, not
    // waited for; a caller older than an epoch already seen gets -1 and nothing.
    // Returns the positions (1-based) of the users already marked sent.
    static let claimScript = RedisScript("""
        local epoch = tonumber(ARGV[1])
        if epoch > 0 then
          local seen = tonumber(redis.call('GET', KEYS[1]) or '0')
          if epoch < seen then return -1 end
          if epoch > seen then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
        end
        local sent = {}
        for first = 3, #ARGV, 1000 do
          local last = math.min(first + 999, #ARGV)
          local marks = redis.call('HMGET', KEYS[2], unpack(ARGV, first, last))
          for i = 1, #marks do
            if marks[i] then sent[#sent + 1] = first - 3 + i end
          end
        end
        return sent
        """)

    // KEYS[1]: a scope's sent hash; ARGV[1]: its TTL (ms), ARGV[2…]: users.
    static let markSentScript = RedisScript("""
        local fields = {}
        for i = 2, #ARGV do
          fields[#fields + 1] = ARGV[i]
          fields[#fields + 1] = '1'
          if #fields >= 1000 then redis.call('HSET', KEYS[1], unpack(fields)); fields = {} end
        end
        if #fields > 0 then redis.call('HSET', KEYS[1], unpack(fields)) end
        redis.call('PEXPIRE', KEYS[1], ARGV[1])
        return #ARGV - 1
        """)

    /// Claims every user of the batch; one round trip.
    public func claim(campaignID: String, userIDs: [String], owner: String) async throws -> [Claim] {
        try await claim(userIDs.map { (campaignID, $0) }, owner: owner)
    }

    public func markSent(campaignID: String, userIDs: [String]) async throws {
        try await markSent(userIDs.map { (campaignID, $0) })
    }

    /// Whether a user is marked sent (operators, tests).
    public func isSent(scope: String, userID: String) async throws -> Bool {
        try await redis.send("HEXISTS", sentKey(scope: scope), userID).int == 1
    }

    /// Claims (scope, user) pairs of any campaigns: one script call per
    /// scope (its own hash tag), all in one pipelined round trip. With a
    /// `fence` (the claimer holds that campaign's or shard's lease; `items`
    /// are of its campaign) the claim is refused with `FencedOut` once a later
    /// epoch of that lease has claimed in the scope. `owner` names unfenced claimers in errors only.
    public func claim(_ items: [(scope: String, userID: String)], owner: String, fence: Fence? = nil) async throws -> [Claim] {
        let replies = try await runGrouped(Self.claimScript, items, fenced: true, shard: fence?.shard,
                                           arguments: [fence?.epoch ?? 0, Int(sentTTL.milliseconds)])
        var claims = [Claim](repeating: .claimed, count: items.count)
        for (indices, reply) in replies {
            if let fence, reply.int == -1 { throw FencedOut("idempotency claim", fence: fence) }
            guard let positions = reply.array else {
                throw RedisError(.unexpectedReply, "claim script answered \(reply)")
            }
            for position in positions {
                guard let p = position.int.map(Int.init), p >= 1, p <= indices.count else {
                    throw RedisError(.unexpectedReply, "claim script answered position \(position) of \(indices.count)")
                }
                claims[indices[p - 1]] = .alreadySent
            }
        }
        return claims
    }

    public func markSent(_ items: [(scope: String, userID: String)]) async throws {
        _ = try await runGrouped(Self.markSentScript, items, arguments: [Int(sentTTL.milliseconds)])
    }

    /// Runs `script` once per scope of `items` (pipelined), with the scope's
    /// keys and `arguments` followed by its users; returns each call's
    /// positions in `items` with its reply. `fenced` puts the scope's fence key
    /// (of the campaign's lease, or of lease `shard`) before its sent hash.
    func runGrouped(_ script: RedisScript, _ items: [(scope: String, userID: String)], fenced: Bool = false, shard: Int? = nil,
                    arguments: [RedisArgument]) async throws -> [(indices: [Int], reply: RedisValue)] {
        guard !items.isEmpty else { return [] }
        var order: [String] = []
        var groups: [String: [Int]] = [:]
        if items.allSatisfy({ $0.scope == items[0].scope }) {
            // The common case (a page of an uncut campaign): one scope, no grouping to build.
            order = [items[0].scope]
            groups[items[0].scope] = Array(items.indices)
        } else {
            for (index, item) in items.enumerated() {
                if groups[item.scope] == nil { order.append(item.scope) }
                groups[item.scope, default: []].append(index)
            }
        }
        let calls = order.map { scope in
            (keys: (fenced ? [fenceKey(scope: scope, shard: shard)] : []) + [sentKey(scope: scope)],
             arguments: arguments + groups[scope]!.map { items[$0].userID as any RedisArgument })
        }
        let replies = calls.count == 1
            ? [try await redis.run(script, keys: calls[0].keys, arguments: calls[0].arguments)]
            : try await redis.run(script, calls: calls)
        return zip(order, replies).map { (groups[$0.0]!, $0.1) }
    }
}
