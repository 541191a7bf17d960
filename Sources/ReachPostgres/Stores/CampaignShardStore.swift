import Foundation
import ReachCore

/// Shard bounds that do not ascend in PostgreSQL's order (a bug, never data).
public struct ShardCutError: Error, CustomStringConvertible {
    public var bounds: [String]
    public var description: String { "shard bounds do not ascend: \(bounds.count) bounds" }
}

/// `reach.campaign_shards`: the ranges a big campaign was cut into, each
/// claimed by one runner at a time through a lease of its own (owner, epoch,
/// `lease_until`), with its own checkpoint and counters. Any instance claims
/// any free shard; one whose holder died is claimed again once its lease ran
/// out and resumes from its checkpoint. The campaign's row keeps the totals
/// (each page adds to both) and its state, which every shard's lease reads.
public struct CampaignShardStore: Sendable {
    public let client: PostgresClient

    public init(client: PostgresClient) { self.client = client }

    public struct Claim: Sendable {
        public var campaignID: String
        public var range: ShardRange
        public var checkpoint: String?
        public var specJSON: String
        /// Seconds since the epoch when the task was accepted.
        public var createdAt: Double
        /// How many shards the campaign has (its idempotency keys' spread).
        public var shards: Int
        /// This shard's lease (`fence.shard` is its index).
        public var fence: Fence
        /// The previous holder did not hand the shard back.
        public var takenOver: Bool
    }

    public struct Progress: Sendable, Equatable {
        public var total = 0
        public var done = 0
        /// Shards whose lease is held right now.
        public var running = 0
        public init() {}
    }

    /// Cuts campaign `id` into `ranges` and hands the campaign's own lease
    /// back: from now on its shards are claimed one by one. Only by the
    /// lease holder (`fence`) of a campaign not cut before; false otherwise.
    public func split(_ id: String, fence: Fence, ranges: [ShardRange], planned: Int) async throws -> Bool {
        try await client.withTransaction { conn in
            let held = try await conn.query(
                "SELECT 1 FROM reach.campaigns WHERE id = $1 AND owner = $2 AND epoch = $3 AND shards = 0 FOR UPDATE",
                [id, fence.owner, fence.epoch])
            guard held.count == 1 else { return false }
            // The bounds must ascend in PostgreSQL's order, or two shards would share users.
            let ascending = try await conn.query("""
                SELECT coalesce(bool_and(b < n), true) FROM (
                    SELECT b, lead(b) OVER (ORDER BY o) AS n FROM unnest($1::text[]) WITH ORDINALITY AS t(b, o)) s WHERE n IS NOT NULL
                """, [ranges.compactMap(\.upper)])
            guard ascending.first?[0] == "t" else { throw ShardCutError(bounds: ranges.compactMap(\.upper)) }
            try await conn.query("""
                INSERT INTO reach.campaign_shards (campaign_id, shard, lower_bound, upper_bound)
                SELECT $1, s.shard, s.lower_bound, CASE WHEN s.ord = $5 THEN NULL ELSE s.upper_bound END
                FROM unnest($2::int[], $3::text[], $4::text[]) WITH ORDINALITY AS s(shard, lower_bound, upper_bound, ord)
                """, [id, ranges.map(\.index), ranges.map(\.lower), ranges.map { $0.upper ?? "" }, ranges.count])
            try await conn.query("""
                UPDATE reach.campaigns SET shards = $2, planned = $3, owner = NULL, lease_until = NULL, updated_at = now() WHERE id = $1
                """, [id, ranges.count, planned])
            return true
        }
    }

    /// The conditions under which shard `s` of campaign `c` is free: not done,
    /// its lease handed back or run out, its campaign running or cancelled
    /// (its rest is still to be settled). `orOwnedBy`: or held by `$1`, which claims it again.
    static func claimable(orOwnedBy: Bool) -> String {
        """
        NOT s.done AND (s.owner IS NULL\(orOwnedBy ? " OR s.owner = $1" : "") OR s.lease_until IS NULL OR s.lease_until < now())
          AND (c.state = 'running' OR (c.state = 'cancelled' AND c.finished_at IS NULL))
        """
    }

    static let returning = """
        RETURNING s.campaign_id, s.shard, s.lower_bound, s.upper_bound, s.checkpoint, s.epoch,
                  (pick.old_owner IS NOT NULL AND pick.old_owner <> $1), c.spec::text,
                  extract(epoch FROM c.created_at)::float8, c.shards
        """

    /// Claims up to `limit` free shards of any campaigns (oldest campaign
    /// first, shards in random order so instances spread out), each under its
    /// next epoch. Shards another instance is claiming right now are skipped,
    /// not waited for; so are those named in `excluding` (`<campaign>#<shard>`:
    /// this instance runs them already, with a lease that may have lapsed).
    public func claimFree(owner: String, lease: Duration, limit: Int, excluding: [String] = []) async throws -> [Claim] {
        guard limit > 0 else { return [] }
        return try await client.query("""
            WITH pick AS (
                SELECT s.campaign_id, s.shard, s.owner AS old_owner
                FROM reach.campaign_shards s JOIN reach.campaigns c ON c.id = s.campaign_id
                WHERE \(Self.claimable(orOwnedBy: false)) AND NOT ((s.campaign_id || '#' || s.shard::text) = ANY($4::text[]))
                ORDER BY c.created_at, random() LIMIT $3
                FOR UPDATE OF s SKIP LOCKED
            )
            \(Self.takePicked)
            """, [owner, lease.seconds, limit, excluding]).compactMap { Self.claim($0, owner: owner) }
    }

    /// Claims shard `shard` of campaign `id` again (after an error of its run); nil when it is not claimable by `owner`.
    public func claim(_ id: String, shard: Int, owner: String, lease: Duration) async throws -> Claim? {
        try await client.query("""
            WITH pick AS (
                SELECT s.campaign_id, s.shard, s.owner AS old_owner
                FROM reach.campaign_shards s JOIN reach.campaigns c ON c.id = s.campaign_id
                WHERE s.campaign_id = $3 AND s.shard = $4 AND \(Self.claimable(orOwnedBy: true))
                FOR UPDATE OF s
            )
            \(Self.takePicked)
            """, [owner, lease.seconds, id, shard]).first.flatMap { Self.claim($0, owner: owner) }
    }

    /// The second half of both claims: the rows in `pick` pass to `$1` for `$2` seconds under the next epoch.
    static let takePicked = """
        UPDATE reach.campaign_shards s
        SET owner = $1, epoch = s.epoch + 1, lease_until = now() + make_interval(secs => $2::double precision),
            started_at = coalesce(s.started_at, now()), updated_at = now()
        FROM pick, reach.campaigns c
        WHERE s.campaign_id = pick.campaign_id AND s.shard = pick.shard AND c.id = s.campaign_id
        \(returning)
        """

    static func claim(_ row: PostgresRow, owner: String) -> Claim? {
        guard let id = row[0], let index = row.int(1), let lower = row[2], let spec = row[7] else { return nil }
        return Claim(campaignID: id, range: ShardRange(index: index, lower: lower, upper: row[3]), checkpoint: row[4],
                     specJSON: spec, createdAt: Double(row[8] ?? "") ?? 0, shards: row.int(9) ?? 0,
                     fence: Fence(owner: owner, epoch: Int64(row[5] ?? "") ?? 0, shard: index), takenOver: row[6] == "t")
    }

    /// Renews a shard's lease and reads its campaign's state; nil when the fence is stale.
    public func heartbeat(_ id: String, fence: Fence, lease: Duration) async throws -> String? {
        try await client.query("""
            UPDATE reach.campaign_shards s SET lease_until = now() + make_interval(secs => $5::double precision)
            FROM reach.campaigns c
            WHERE s.campaign_id = $1 AND s.shard = $2 AND s.owner = $3 AND s.epoch = $4 AND c.id = s.campaign_id
            RETURNING c.state
            """, [id, fence.shard ?? -1, fence.owner, fence.epoch, lease.seconds]).first?[0]
    }

    /// Gives a shard back (its campaign is paused, or this instance is stopping).
    public func release(_ id: String, fence: Fence) async throws {
        try await client.query("""
            UPDATE reach.campaign_shards SET owner = NULL, lease_until = NULL, updated_at = now()
            WHERE campaign_id = $1 AND shard = $2 AND owner = $3 AND epoch = $4
            """, [id, fence.shard ?? -1, fence.owner, fence.epoch])
    }

    /// Marks a shard done (every user of its range has a row); returns how
    /// many of the campaign's shards are still open, nil when the fence is stale.
    public func finish(_ id: String, fence: Fence) async throws -> Int? {
        try await client.withTransaction { conn in
            let done = try await conn.query("""
                UPDATE reach.campaign_shards SET done = true, finished_at = now(), owner = NULL, lease_until = NULL, updated_at = now()
                WHERE campaign_id = $1 AND shard = $2 AND owner = $3 AND epoch = $4 AND NOT done
                """, [id, fence.shard ?? -1, fence.owner, fence.epoch])
            guard done.affected == 1 else { return nil }
            return try await conn.query("SELECT count(*) FROM reach.campaign_shards WHERE campaign_id = $1 AND NOT done", [id])
                .first?.int(0) ?? 0
        }
    }

    /// How far a campaign's shards are.
    public func progress(_ id: String) async throws -> Progress {
        var progress = Progress()
        if let row = try await client.query("""
            SELECT count(*), count(*) FILTER (WHERE done),
                   count(*) FILTER (WHERE NOT done AND owner IS NOT NULL AND lease_until > now())
            FROM reach.campaign_shards WHERE campaign_id = $1
            """, [id]).first {
            progress.total = row.int(0) ?? 0
            progress.done = row.int(1) ?? 0
            progress.running = row.int(2) ?? 0
        }
        return progress
    }
}
