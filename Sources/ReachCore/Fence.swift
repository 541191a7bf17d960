/// A lease holder's fencing token: who holds a campaign and under which epoch.
/// Every claim of a campaign's lease takes the next epoch; every write that
/// follows from the lease carries the token, and the store refuses it once a
/// later epoch exists. A runner that was frozen or cut off past its lease
/// cannot apply anything after another one took over.
///
/// A campaign cut into shards has one lease per shard, each with epochs of
/// its own: `shard` names the one this fence holds (nil: the campaign's own lease).
public struct Fence: Sendable, Hashable, CustomStringConvertible {
    public var owner: String
    public var epoch: Int64
    public var shard: Int?

    public init(owner: String, epoch: Int64, shard: Int? = nil) {
        self.owner = owner
        self.epoch = epoch
        self.shard = shard
    }

    /// The value an idempotency claim under this fence holds.
    public var token: String { shard.map { "\(owner)#\(epoch)/\($0)" } ?? "\(owner)#\(epoch)" }

    public var description: String { token }
}

/// A write refused because its fence is stale: another runner holds the lease now.
public struct FencedOut: Error, Sendable, CustomStringConvertible {
    public var what: String
    public var fence: Fence

    public init(_ what: String, fence: Fence) {
        self.what = what
        self.fence = fence
    }

    public var description: String { "\(what) refused: the lease of epoch \(fence.epoch) was taken over" }
}
