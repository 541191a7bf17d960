/// How a campaign's segment is cut into shards when it starts: each shard is
/// a range of user ids with a lease, a checkpoint and counters of its own, so
/// every instance can work one campaign at once. The cut is decided once and
/// never changes; a campaign too small to gain from it runs as one piece.
public enum ShardPlan {
    /// How many shards `recipients` users are cut into: as many as
    /// `maxShards` allows while each keeps at least `minimumPerShard` users;
    /// 1 means no cut (the campaign runs as one piece, as before shards).
    public static func count(recipients: Int, maxShards: Int, minimumPerShard: Int) -> Int {
        guard maxShards > 1, recipients > 0 else { return 1 }
        return max(1, min(maxShards, recipients / max(1, minimumPerShard)))
    }

    /// The inclusive upper bounds of every shard but the last, picked from a
    /// sorted sample of the segment's user ids (ascending in PostgreSQL's
    /// order): the sample's `k/count` quantiles, repeats dropped. Fewer
    /// bounds than `count - 1` come back when the sample has too few distinct ids.
    public static func bounds(sortedSample sample: [String], count: Int) -> [String] {
        guard count > 1, !sample.isEmpty else { return [] }
        var bounds: [String] = []
        for k in 1..<count {
            let index = min(sample.count - 1, (sample.count * k) / count)
            let bound = sample[index]
            if bound != bounds.last && bound != sample.last { bounds.append(bound) }
        }
        return bounds
    }
}

/// One shard of a campaign: the users with `lower < user_id <= upper` (in
/// PostgreSQL's order of the id column), `lower` "" for the first shard and
/// `upper` nil for the last.
public struct ShardRange: Sendable, Equatable {
    public var index: Int
    public var lower: String
    public var upper: String?

    public init(index: Int, lower: String, upper: String?) {
        self.index = index
        self.lower = lower
        self.upper = upper
    }

    /// The shards that `bounds` (ascending) cut a segment into.
    public static func ranges(bounds: [String]) -> [ShardRange] {
        var ranges: [ShardRange] = []
        var lower = ""
        for (i, bound) in bounds.enumerated() {
            ranges.append(ShardRange(index: i, lower: lower, upper: bound))
            lower = bound
        }
        ranges.append(ShardRange(index: bounds.count, lower: lower, upper: nil))
        return ranges
    }
}

/// Where a campaign's idempotency keys live in Redis. An uncut campaign keeps
/// one hash tag (`{idem:<campaign>}`); a campaign cut into `n` shards spreads
/// its users over `n` tags (`{idem:<campaign>#<bucket>}`), so a big campaign
/// spreads over Redis Cluster slots. A user's bucket is a pure function of
/// its id (FNV-1a), not of the shard ranges: the range order is PostgreSQL's
/// collation, and a retry or replay must find the key without asking it.
/// `#` cannot occur in a campaign id, so a bucket's tag never names another campaign.
public struct KeySpread: Sendable, Equatable {
    public var buckets: Int

    public init(buckets: Int) { self.buckets = buckets }

    /// One tag for the whole campaign.
    public static let single = KeySpread(buckets: 1)

    /// The spread of a campaign cut into `shards` (0: not cut).
    public static func campaign(shards: Int) -> KeySpread { KeySpread(buckets: max(1, shards)) }

    /// The key scope (the part inside the hash tag after `idem:`) of one user's key.
    public func scope(campaignID: String, userID: String) -> String {
        guard buckets > 1 else { return campaignID }
        return "\(campaignID)#\(StableHash.fnv1a(userID) % UInt64(buckets))"
    }
}
