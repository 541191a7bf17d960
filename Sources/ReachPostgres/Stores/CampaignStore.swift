import Foundation
import ReachCore

/// `reach.campaigns`: created once per id, claimed by one runner at a time
/// through a lease, finished with counters recounted from `reach.deliveries`.
public struct CampaignStore: Sendable {
    public let client: PostgresClient

    public init(client: PostgresClient) { self.client = client }

    public struct Claim: Sendable {
        public var campaignID: String
        public var specJSON: String
        public var checkpoint: String?
        /// Seconds since the epoch when the task was accepted.
        public var createdAt: Double
        /// The lease this claim holds; every write of the run carries it.
        public var fence: Fence
        /// The previous holder did not hand the lease back.
        public var takenOver: Bool
        /// How many shards the campaign was cut into (0: not cut). A claim of a
        /// cut campaign comes only once every shard is done: it ends the campaign.
        public var shards: Int
    }

    public struct Counters: Sendable, Equatable {
        public var targeted = 0
        public var sent = 0
        public var skipped = 0
        public var failed = 0
        public var dead = 0
        public init() {}

        /// From a row with columns targeted, sent, skipped, failed and dead.
        init(_ row: PostgresRow) {
            targeted = row.int("targeted") ?? 0
            sent = row.int("sent") ?? 0
            skipped = row.int("skipped") ?? 0
            failed = row.int("failed") ?? 0
            dead = row.int("dead") ?? 0
        }
    }

    public struct Status: Sendable {
        public var id: String
        public var state: String
        public var counters: Counters
        public var checkpoint: String?
        public var error: String?
        public var createdAt: String
        public var startedAt: String?
        public var finishedAt: String?
    }

    /// Inserts the campaign; false when the id already existed (a no-op).
    public func create(_ task: CampaignTask, specJSON: String, acceptedAt: Date = Date()) async throws -> Bool {
        let rows = try await client.query("""
            INSERT INTO reach.campaigns (id, name, spec, state, scheduled_at, expires_at, recurring)
            VALUES ($1, $2, $3::jsonb, 'scheduled', $4::timestamptz, $5::timestamptz, $6::boolean)
            ON CONFLICT (id) DO NOTHING RETURNING id
            """, [task.campaignID, task.name, specJSON, Self.scheduledAt(task.schedule, acceptedAt: acceptedAt),
                  task.expiresAt.map(RFC3339.format), task.schedule.isRecurring])
        return rows.count == 1
    }

    static func scheduledAt(_ schedule: CampaignSchedule, acceptedAt: Date) -> String? {
        if case .now = schedule { return nil }
        return RFC3339.format(schedule.dueDate(acceptedAt: acceptedAt))
    }

    /// A campaign cut into shards is run shard by shard (`CampaignShardStore`);
    /// its own row is claimed again only to end it, once every shard is done.
    static let noOpenShards = """
        (c.shards = 0 OR NOT EXISTS (SELECT 1 FROM reach.campaign_shards s WHERE s.campaign_id = c.id AND NOT s.done))
        """

    /// Ids of campaigns with work for a runner, whose lease is free or expired:
    /// due ones, and cancelled ones whose remaining users are not yet marked.
    /// Never a recurring campaign's own row: only its runs are run.
    public func claimable(limit: Int = 16) async throws -> [String] {
        try await client.query("""
            SELECT id FROM reach.campaigns c
            WHERE ((state IN ('scheduled', 'running') AND coalesce(scheduled_at, created_at) <= now())
                   OR (state = 'cancelled' AND finished_at IS NULL))
              AND NOT recurring AND \(Self.noOpenShards)
              AND (lease_until IS NULL OR lease_until < now())
            ORDER BY created_at LIMIT $1
            """, [limit]).compactMap { $0[0] }
    }

    public enum Control: String, Sendable {
        case pause, resume, cancel
    }

    /// Applies a control message; false when the campaign is unknown or in a
    /// state the control does not apply to (a logged no-op). Resume leaves the
    /// lease alone: a runner still finishing the requests it had on the wire
    /// when the pause came either goes on or hands the campaign back itself,
    /// so nobody else can start while those requests may still be answered.
    ///
    /// A recurring campaign's own row: pause holds its future runs (those
    /// that come due meanwhile are skipped), resume makes it `scheduled` again,
    /// cancel ends the series (`cancelled` and finished). Its runs are
    /// campaigns of their own, controlled by their own ids.
    public func control(_ id: String, _ control: Control) async throws -> Bool {
        let sql = switch control {
        case .pause:
            "UPDATE reach.campaigns SET state = 'paused', updated_at = now() WHERE id = $1 AND state IN ('scheduled', 'running')"
        case .resume:
            """
            UPDATE reach.campaigns SET state = CASE WHEN recurring OR coalesce(scheduled_at, created_at) > now() THEN 'scheduled' ELSE 'running' END,
                   updated_at = now()
            WHERE id = $1 AND state = 'paused'
            """
        case .cancel:
            """
            UPDATE reach.campaigns SET state = 'cancelled', updated_at = now(),
                   finished_at = CASE WHEN recurring THEN now() ELSE finished_at END
            WHERE id = $1 AND state IN ('scheduled', 'running', 'paused')
            """
        }
        return try await client.query(sql, [id]).affected == 1
    }

    /// Renews the lease and reads the state the runner must honour; nil when
    /// the fence is stale (another runner claimed the campaign since). A lease
    /// that ran out while nobody else claimed it is simply renewed: the
    /// holder was cut off from PostgreSQL, not replaced.
    public func heartbeat(_ id: String, fence: Fence, lease: Duration) async throws -> String? {
        try await client.query("""
            UPDATE reach.campaigns SET lease_until = now() + make_interval(secs => $4::double precision)
            WHERE id = $1 AND owner = $2 AND epoch = $3 RETURNING state
            """, [id, fence.owner, fence.epoch, lease.seconds]).first?[0]
    }

    /// Gives the campaign back (paused, or this instance is stopping).
    public func release(_ id: String, fence: Fence) async throws {
        try await client.query("UPDATE reach.campaigns SET owner = NULL, lease_until = NULL WHERE id = $1 AND owner = $2 AND epoch = $3",
                               [id, fence.owner, fence.epoch])
    }

    /// Takes the runner lease under the next epoch; nil when another runner
    /// holds it or the campaign is not runnable. `takenOver` says the previous
    /// holder did not hand it back (it died, froze or lost its connection):
    /// requests it had on the wire may still be answered, so the new holder
    /// waits out the longest provider time-out before its first request.
    public func claim(_ id: String, owner: String, lease: Duration) async throws -> Claim? {
        let row = try await client.query("""
            WITH old AS (SELECT id, owner AS old_owner FROM reach.campaigns WHERE id = $1 FOR UPDATE)
            UPDATE reach.campaigns c
            SET owner = $2, epoch = c.epoch + 1, lease_until = now() + make_interval(secs => $3::double precision),
                state = CASE WHEN c.state = 'cancelled' THEN c.state ELSE 'running' END,
                started_at = coalesce(c.started_at, now()), updated_at = now()
            FROM old
            WHERE c.id = old.id
              AND ((c.state IN ('scheduled', 'running') AND coalesce(c.scheduled_at, c.created_at) <= now())
                   OR (c.state = 'cancelled' AND c.finished_at IS NULL))
              AND NOT c.recurring AND \(Self.noOpenShards)
              AND (c.owner IS NULL OR c.owner = $2 OR c.lease_until IS NULL OR c.lease_until < now())
            RETURNING c.spec::text, c.checkpoint, extract(epoch FROM c.created_at)::float8, c.epoch,
                      (old.old_owner IS NOT NULL AND old.old_owner <> $2), c.shards
            """, [id, owner, lease.seconds]).first
        guard let row, let spec = row[0] else { return nil }
        return Claim(campaignID: id, specJSON: spec, checkpoint: row[1], createdAt: Double(row[2] ?? "") ?? 0,
                     fence: Fence(owner: owner, epoch: Int64(row[3] ?? "") ?? 0), takenOver: row[4] == "t", shards: row.int(5) ?? 0)
    }

    /// SET items and FROM of an UPDATE of campaign `$1` (alias `c`) that recount its counters from its deliveries.
    /// `failed`: users with at least one failed provider call, whatever their end: more attempts
    /// than a success needs (a deferral spends none, so `attempts` counts calls).
    static let recountedCounters = """
        targeted = d.targeted, sent = d.sent, skipped = d.skipped, failed = d.failed, dead = d.dead
        FROM (SELECT count(*) AS targeted,
                     count(*) FILTER (WHERE status = 'sent') AS sent,
                     count(*) FILTER (WHERE status = 'skipped') AS skipped,
                     count(*) FILTER (WHERE attempts > CASE WHEN status = 'sent' THEN 1 ELSE 0 END) AS failed,
                     count(*) FILTER (WHERE status = 'dead') AS dead
              FROM reach.deliveries WHERE campaign_id = $1) d
        """

    /// Marks the campaign finished and recounts its counters from the deliveries.
    /// A cancel that arrived after the runner last looked is kept (`cancelled`, not `done`).
    @discardableResult
    public func finish(_ id: String, fence: Fence, state: String = "done", error: String? = nil) async throws -> Bool {
        try await client.query("""
            UPDATE reach.campaigns c SET
                state = CASE WHEN c.state = 'cancelled' AND $3 = 'done' THEN 'cancelled' ELSE $3 END,
                error = $4, finished_at = now(), updated_at = now(), owner = NULL, lease_until = NULL,
                \(Self.recountedCounters)
            WHERE c.id = $1 AND c.owner = $2 AND c.epoch = $5
            """, [id, fence.owner, state, error, fence.epoch]).affected == 1
    }

    /// Marks a campaign `failed` from outside its runner (a retry found its
    /// stored task invalid); counters recounted; a finished campaign stays as it is.
    public func failUnowned(_ id: String, error: String) async throws {
        try await client.query("""
            UPDATE reach.campaigns c SET
                state = 'failed', error = $2, finished_at = now(), updated_at = now(), owner = NULL, lease_until = NULL,
                \(Self.recountedCounters)
            WHERE c.id = $1 AND c.state NOT IN ('done', 'cancelled', 'failed')
            """, [id, error])
    }

    public func status(_ id: String) async throws -> Status? {
        guard let row = try await client.query("""
            SELECT id, state, targeted, sent, skipped, failed, dead, checkpoint, error,
                   created_at::text, started_at::text, finished_at::text
            FROM reach.campaigns WHERE id = $1
            """, [id]).first else { return nil }
        return Status(id: id, state: row["state"] ?? "", counters: Counters(row), checkpoint: row["checkpoint"], error: row["error"],
                      createdAt: row["created_at"] ?? "", startedAt: row["started_at"], finishedAt: row["finished_at"])
    }

    /// The stored task and state of a campaign, for work done outside its runner (retries).
    /// `shards`: how many shards it was cut into (0: not cut), which spreads its idempotency keys.
    public func spec(_ id: String) async throws -> (state: String, specJSON: String, createdAt: Double, shards: Int)? {
        guard let row = try await client.query(
            "SELECT state, spec::text, extract(epoch FROM created_at)::float8, shards FROM reach.campaigns WHERE id = $1", [id]).first,
            let state = row[0], let spec = row[1] else { return nil }
        return (state, spec, Double(row[2] ?? "") ?? 0, row.int(3) ?? 0)
    }

    /// Campaign counts by state, for the `reach_campaigns` gauge.
    public func countsByState() async throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for row in try await client.query("SELECT state, count(*) FROM reach.campaigns GROUP BY state") {
            counts[row[0] ?? ""] = row.int(1) ?? 0
        }
        return counts
    }

    // MARK: recurring campaigns (schedule.cron)

    /// A recurring campaign's own row, as the code that fires its runs reads it.
    public struct Series: Sendable {
        public var id: String
        public var state: String
        public var specJSON: String
        /// The run the series waits for.
        public var due: Date
        /// `due` exactly as stored, for the compare-and-set of `advance`.
        public var dueText: String
        /// The series ended (cancelled, expired, failed).
        public var finished: Bool
    }

    /// The row of recurring campaign `id`; nil when there is none (or it is not recurring).
    public func series(_ id: String) async throws -> Series? {
        guard let row = try await client.query("""
            SELECT state, spec::text, scheduled_at::text, extract(epoch FROM scheduled_at)::float8, finished_at IS NOT NULL
            FROM reach.campaigns WHERE id = $1 AND recurring AND scheduled_at IS NOT NULL
            """, [id]).first, let state = row[0], let spec = row[1], let dueText = row[2], let epoch = Double(row[3] ?? "") else { return nil }
        return Series(id: id, state: state, specJSON: spec, due: Date(timeIntervalSince1970: epoch), dueText: dueText, finished: row[4] == "t")
    }

    /// Recurring campaigns whose run came due at least `grace` ago and was not
    /// fired: their delay-queue item was lost, or no scheduler got to it.
    public func overdueSeries(grace: Duration, limit: Int = 50) async throws -> [String] {
        try await client.query("""
            SELECT id FROM reach.campaigns
            WHERE recurring AND finished_at IS NULL AND state IN ('scheduled', 'paused')
              AND scheduled_at <= now() - make_interval(secs => $1::double precision)
            ORDER BY scheduled_at LIMIT $2
            """, [grace.seconds, limit]).compactMap { $0[0] }
    }

    public struct Advance: Sendable, Equatable {
        /// The series' state when it moved on: a `paused` series skips the run.
        public var state: String
        /// The run's campaign was created now (false: it existed already, or the run was skipped).
        public var created: Bool
    }

    /// Moves series `id` from the run it waited for (`dueText`, as read) to
    /// `next`, and creates `run` as a campaign of its own (id `run.id`, the
    /// series' stored task with that id and no schedule) unless the series is
    /// paused; `next` nil ends the series (`done`). One statement, so the run
    /// exists exactly when the series has moved past it; nil (nothing done)
    /// when the series is no longer waiting for `dueText` (another instance
    /// moved it, or it was cancelled), so firing twice creates one run.
    public func advance(_ id: String, from dueText: String, run: (id: String, at: Date)?, next: Date?) async throws -> Advance? {
        guard let row = try await client.query("""
            WITH old AS (
                SELECT id, state FROM reach.campaigns
                WHERE id = $1 AND recurring AND finished_at IS NULL AND state IN ('scheduled', 'paused')
                  AND scheduled_at = $2::timestamptz
                FOR UPDATE
            ), parent AS (
                UPDATE reach.campaigns c SET
                    scheduled_at = coalesce($3::timestamptz, c.scheduled_at),
                    state = CASE WHEN $3::timestamptz IS NULL THEN 'done' ELSE c.state END,
                    finished_at = CASE WHEN $3::timestamptz IS NULL THEN now() END,
                    updated_at = now()
                FROM old WHERE c.id = old.id
                RETURNING c.id, old.state AS old_state, c.name, c.spec, c.expires_at
            ), run AS (
                INSERT INTO reach.campaigns (id, name, spec, state, scheduled_at, expires_at, parent_id)
                SELECT $4::text, p.name, jsonb_set(p.spec - 'schedule', '{campaign_id}', to_jsonb($4::text)),
                       'scheduled', $5::timestamptz, p.expires_at, p.id
                FROM parent p WHERE p.old_state = 'scheduled' AND $4::text IS NOT NULL
                ON CONFLICT (id) DO NOTHING RETURNING id
            )
            SELECT (SELECT old_state FROM parent), (SELECT count(*) FROM run)
            """, [id, dueText, next.map(RFC3339.format), run?.id, run.map { RFC3339.format($0.at) }]).first,
            let state = row[0] else { return nil }
        return Advance(state: state, created: row.int(1) == 1)
    }
}
