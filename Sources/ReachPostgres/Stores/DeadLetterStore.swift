/// `reach.dead_letters` (SPEC §3.3).
public struct DeadLetterStore: Sendable {
    public let client: PostgresClient

    public init(client: PostgresClient) { self.client = client }

    /// Records an invalid Kafka message once per (topic, partition, offset):
    /// a redelivered message does not make a second row. `payloadJSON` is the
    /// JSON value to store (for raw text, a JSON string); `raw`, when given, the
    /// message's exact bytes (kept in `raw bytea` when `payload` could only hold
    /// a lossy copy). Returns the row's id.
    @discardableResult
    public func recordInput(topic: String, partition: Int32, offset: Int64, reason: String, error: String,
                            payloadJSON: String, raw: [UInt8]? = nil) async throws -> Int {
        let rows = try await client.query("""
            WITH inserted AS (
                INSERT INTO reach.dead_letters (reason, error, source, payload, topic, kafka_partition, kafka_offset, published_at, raw)
                VALUES ($1, $2, 'input', $3::jsonb, $4, $5, $6, now(), $7::bytea)
                ON CONFLICT (topic, kafka_partition, kafka_offset) WHERE source = 'input' DO NOTHING
                RETURNING id)
            SELECT id FROM inserted
            UNION ALL
            SELECT id FROM reach.dead_letters WHERE source = 'input' AND topic = $4 AND kafka_partition = $5 AND kafka_offset = $6
            LIMIT 1
            """, [reason, error, payloadJSON, topic, Int(partition), offset, raw.map(Self.byteaHex)])
        return rows.first?.int(0) ?? 0
    }

    /// bytea's hex text format (`\x0a1b…`), how a binary value travels as a text parameter.
    public static func byteaHex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8](repeating: 0, count: 2 + bytes.count * 2)
        out[0] = UInt8(ascii: "\\")
        out[1] = UInt8(ascii: "x")
        for (i, b) in bytes.enumerated() {
            out[2 + 2 * i] = digits[Int(b >> 4)]
            out[3 + 2 * i] = digits[Int(b & 0x0F)]
        }
        return String(decoding: out, as: UTF8.self)
    }

    public struct Unpublished: Sendable {
        public var id: Int
        public var json: String
        public var key: String?
    }

    /// Publishes delivery dead letters not yet on Kafka, oldest first, marking
    /// each once `publish` returned (an outbox: a crash between the two
    /// publishes again, never loses one). Safe from several instances.
    public func publishPending(limit: Int = 500, _ publish: @Sendable (Unpublished) async throws -> Void) async throws -> Int {
        try await client.withTransaction { conn in
            let rows = try await conn.query("""
                SELECT id, json_build_object('reason', reason, 'error', error, 'source', source, 'campaign_id', campaign_id,
                         'user_id', user_id, 'channel', channel, 'attempts', attempts,
                         'failed_at', to_char(failed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), 'payload', payload)::text,
                       user_id
                FROM reach.dead_letters WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED
                """, [limit])
            var done: [Int] = []
            for row in rows {
                let item = Unpublished(id: row.int(0) ?? 0, json: row[1] ?? "{}", key: row[2])
                try await publish(item)
                done.append(item.id)
            }
            if !done.isEmpty {
                try await conn.query("UPDATE reach.dead_letters SET published_at = now() WHERE id = ANY($1::bigint[])", [done])
            }
            return done.count
        }
    }
}

extension DeadLetterStore {
    /// Which delivery dead letters to replay (all filters optional, combined with AND).
    public struct ReplayFilter: Sendable {
        public var campaignID: String?
        public var channel: String?
        /// RFC 3339; dead letters that failed at or after it.
        public var since: String?
        public var ids: [Int]?
        public var limit: Int

        public init(campaignID: String? = nil, channel: String? = nil, since: String? = nil, ids: [Int]? = nil, limit: Int = 10_000) {
            self.campaignID = campaignID
            self.channel = channel
            self.since = since
            self.ids = ids
            self.limit = limit
        }
    }

    public struct Replayable: Sendable, Equatable {
        public var id: Int
        public var campaignID: String
        public var userID: String
        public var channel: String
        /// For a trigger send: the payload's `trigger` object (JSON text), what a replay rebuilds the send from.
        public var trigger: String?

        public init(id: Int, campaignID: String, userID: String, channel: String, trigger: String? = nil) {
            self.id = id
            self.campaignID = campaignID
            self.userID = userID
            self.channel = channel
            self.trigger = trigger
        }
    }

    /// The delivery dead letters a filter selects, not yet replayed.
    public func replayable(_ filter: ReplayFilter) async throws -> [Replayable] {
        try await client.query("""
            SELECT id, campaign_id, user_id, channel, (payload -> 'trigger')::text FROM reach.dead_letters
            WHERE source = 'delivery' AND replayed_at IS NULL
              AND ($1::text IS NULL OR campaign_id = $1) AND ($2::text IS NULL OR channel = $2)
              AND ($3::timestamptz IS NULL OR failed_at >= $3::timestamptz) AND ($4::bigint[] IS NULL OR id = ANY($4::bigint[]))
            ORDER BY id LIMIT $5
            """, [filter.campaignID, filter.channel, filter.since, filter.ids, filter.limit]).map { row in
            Replayable(id: row.int(0) ?? 0, campaignID: row[1] ?? "", userID: row[2] ?? "", channel: row[3] ?? "", trigger: row[4])
        }
    }

    /// The `trigger` context of the newest delivery dead letter of each
    /// (campaign, user) that has one, keyed by `DeliveryStore.pairKey`: how a
    /// trigger send whose queue item lost its context (re-queued by the stale-row
    /// sweep after a replay) is rebuilt.
    public func triggerContexts(_ pairs: [(campaignID: String, userID: String)]) async throws -> [String: String] {
        guard !pairs.isEmpty else { return [:] }
        var result: [String: String] = [:]
        for row in try await client.query("""
            SELECT DISTINCT ON (d.campaign_id, d.user_id) d.campaign_id, d.user_id, (d.payload -> 'trigger')::text
            FROM reach.dead_letters d
            JOIN unnest($1::text[], $2::text[]) AS p(campaign_id, user_id) ON d.campaign_id = p.campaign_id AND d.user_id = p.user_id
            WHERE d.source = 'delivery' AND d.payload ? 'trigger'
            ORDER BY d.campaign_id, d.user_id, d.id DESC
            """, [pairs.map(\.campaignID), pairs.map(\.userID)]) {
            if let context = row[2] { result[DeliveryStore.pairKey(campaignID: row[0] ?? "", userID: row[1] ?? "")] = context }
        }
        return result
    }

    /// Marks the dead letters replayed and puts their deliveries back to
    /// `scheduled` (attempts start again), moving the campaigns' `dead`
    /// counters; only rows still `dead` change. Returns the ids that changed.
    public func markReplayed(_ letters: [Replayable]) async throws -> [Int] {
        guard !letters.isEmpty else { return [] }
        return try await client.withTransaction { conn in
            let changed = try await conn.query("""
                WITH picked AS (
                    UPDATE reach.dead_letters SET replayed_at = now()
                    WHERE id = ANY($1::bigint[]) AND replayed_at IS NULL RETURNING id, campaign_id, user_id),
                reopened AS (
                    UPDATE reach.deliveries d SET status = 'scheduled', reason = 'replay', attempts = 0, updated_at = now()
                    FROM picked WHERE d.campaign_id = picked.campaign_id AND d.user_id = picked.user_id AND d.status = 'dead'
                    RETURNING picked.id, d.campaign_id)
                SELECT id, campaign_id FROM reopened
                """, [letters.map(\.id)])
            var byCampaign: [String: Int] = [:]
            for row in changed { byCampaign[row[1] ?? "", default: 0] += 1 }
            for (campaign, count) in byCampaign {
                try await conn.query("UPDATE reach.campaigns SET dead = dead - $2, updated_at = now() WHERE id = $1", [campaign, count])
            }
            return changed.compactMap { $0.int(0) }
        }
    }
}

extension DeadLetterStore {
    /// A dead letter as the operator API lists it.
    public struct Letter: Sendable {
        public var id: Int
        public var reason: String
        public var error: String?
        public var source: String
        public var campaignID: String?
        public var userID: String?
        public var channel: String?
        public var attempts: Int
        public var failedAt: String
        public var replayedAt: String?
        /// jsonb as JSON text.
        public var payloadJSON: String?
        public var topic: String?
        public var partition: Int?
        public var offset: Int?
    }

    /// Newest first, with ids below `before`; filters as for replay (source optional).
    public func list(campaignID: String?, channel: String?, since: String?, source: String?, before: Int?, limit: Int) async throws -> [Letter] {
        try await client.query("""
            SELECT id, reason, error, source, campaign_id, user_id, channel, attempts,
                   to_char(failed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                   to_char(replayed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                   payload::text, topic, kafka_partition, kafka_offset
            FROM reach.dead_letters
            WHERE ($1::text IS NULL OR campaign_id = $1) AND ($2::text IS NULL OR channel = $2)
              AND ($3::timestamptz IS NULL OR failed_at >= $3::timestamptz) AND ($4::text IS NULL OR source = $4)
              AND ($5::bigint IS NULL OR id < $5)
            ORDER BY id DESC LIMIT $6
            """, [campaignID, channel, since, source, before, limit]).map { r in
            Letter(id: r.int(0) ?? 0, reason: r[1] ?? "", error: r[2], source: r[3] ?? "", campaignID: r[4], userID: r[5],
                   channel: r[6], attempts: r.int(7) ?? 0, failedAt: r[8] ?? "", replayedAt: r[9], payloadJSON: r[10],
                   topic: r[11], partition: r.int(12), offset: r.int(13))
        }
    }
}
