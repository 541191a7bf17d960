import ReachCore

/// What the operator API reads of campaigns: pages of summaries, and the
/// per-channel, per-status breakdown of one campaign's deliveries.
extension CampaignStore {
    public struct Summary: Sendable {
        public var id: String
        public var name: String?
        public var state: String
        public var error: String?
        public var counters: Counters
        public var createdAt: String
        public var scheduledAt: String?
        public var expiresAt: String?
        public var startedAt: String?
        public var finishedAt: String?
        /// Seconds from start to finish (or to now while running), nil before the start.
        public var runSeconds: Double?
        /// How many distinct users the task lists (`segment.user_ids`; a repeated id is one user), nil for segments and rules.
        public var listed: Int?
        /// A recurring series (`schedule.cron`): its runs are campaigns of their own.
        public var recurring: Bool
        /// The series a run belongs to.
        public var parentID: String?
        /// How many shards it was cut into (0: not cut).
        public var shards: Int = 0
        /// The users counted when it was cut into shards.
        public var planned: Int?
        /// Keyset position of this row in the newest-first listing.
        public var cursor: String { createdAt + "|" + id }
    }

    static let summaryColumns = """
        id, name, state, error, targeted, sent, skipped, failed, dead, recurring, parent_id, shards, planned,
        to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created,
        to_char(scheduled_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS scheduled,
        to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS expires,
        to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS started,
        to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS finished,
        extract(epoch FROM coalesce(finished_at, now()) - started_at)::float8 AS run_seconds,
        CASE WHEN jsonb_typeof(spec->'segment'->'user_ids') = 'array'
             THEN (SELECT count(DISTINCT u) FROM jsonb_array_elements_text(spec->'segment'->'user_ids') u) END AS listed
        """

    static func summary(_ row: PostgresRow) -> Summary {
        let counters = Counters(row)
        let id = row["id"] ?? ""
        let created = row["created"] ?? ""
        return Summary(id: id, name: row["name"], state: row["state"] ?? "", error: row["error"], counters: counters,
                       createdAt: created, scheduledAt: row["scheduled"], expiresAt: row["expires"],
                       startedAt: row["started"], finishedAt: row["finished"],
                       runSeconds: row["run_seconds"].flatMap(Double.init), listed: row.int("listed"), recurring: row.bool("recurring") ?? false,
                       parentID: row["parent_id"], shards: row.int("shards") ?? 0, planned: row.int("planned"))
    }

    /// Campaigns newest first, optionally in one state and created at or after
    /// `since` (RFC 3339), after the keyset position `after` (a row's `cursor`).
    /// `parent`: only the runs of that recurring series.
    public func list(state: String?, since: String?, parent: String? = nil, after: String?, limit: Int) async throws -> [Summary] {
        var afterCreated: String?
        var afterID: String?
        if let after, let bar = after.firstIndex(of: "|") {
            afterCreated = String(after[..<bar])
            afterID = String(after[after.index(after: bar)...])
        }
        return try await client.query("""
            SELECT \(Self.summaryColumns) FROM reach.campaigns
            WHERE ($1::text IS NULL OR state = $1) AND ($2::timestamptz IS NULL OR created_at >= $2::timestamptz)
              AND ($3::timestamptz IS NULL OR (created_at, id) < ($3::timestamptz, $4::text))
              AND ($6::text IS NULL OR parent_id = $6)
            ORDER BY created_at DESC, id DESC LIMIT $5
            """, [state, since, afterCreated, afterID, limit, parent]).map(Self.summary)
    }

    public func summary(_ id: String) async throws -> Summary? {
        try await client.query("SELECT \(Self.summaryColumns) FROM reach.campaigns WHERE id = $1", [id]).first.map(Self.summary)
    }

    /// One group of a campaign's deliveries.
    public struct Breakdown: Sendable, Equatable {
        public var channel: String?
        public var status: String
        public var reason: String?
        public var count: Int
    }

    /// The campaign's deliveries counted by channel, status and reason (one scan of its rows).
    public func breakdown(_ id: String) async throws -> [Breakdown] {
        try await client.query("""
            SELECT channel, status, reason, count(*) FROM reach.deliveries WHERE campaign_id = $1
            GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
            """, [id]).map { Breakdown(channel: $0[0], status: $0[1] ?? "", reason: $0[2], count: $0.int(3) ?? 0) }
    }
}
