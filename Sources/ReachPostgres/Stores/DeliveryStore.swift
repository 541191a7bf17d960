import ReachCore

/// `reach.deliveries`: one row per (campaign_id, user_id), the durable truth
/// of what happened to each user. Written one batch per statement.
public struct DeliveryStore: Sendable {
    public let client: PostgresClient

    public init(client: PostgresClient) { self.client = client }

    public struct Row: Sendable, Equatable {
        public var userID: String
        public var channel: String?
        public var status: DeliveryStatus
        /// The string form of a SkipReason, WaitReason or DeadReason.
        public var reason: String?
        public var attempts: Int
        public var messageID: String
        public var providerRef: String?
        public var lastError: String?
        /// Which of the channel's providers accepted it (`sent` rows).
        public var provider: String?

        public init(userID: String, channel: String?, status: DeliveryStatus, reason: String? = nil, attempts: Int, messageID: String,
                    providerRef: String? = nil, lastError: String? = nil, provider: String? = nil) {
            self.userID = userID
            self.channel = channel
            self.status = status
            self.reason = reason
            self.attempts = attempts
            self.messageID = messageID
            self.providerRef = providerRef
            self.lastError = lastError
            self.provider = provider
        }

        /// It records a user's first failed provider call (attempt 1 failed: waiting
        /// for a retry, or dead from it), which the campaign's `failed` counts; the
        /// upsert's SQL counts the same.
        var isFirstFailure: Bool {
            attempts == 1 && ((status == .scheduled && reason == "retry")
                              || (status == .dead && (reason == "provider_rejected" || reason == "retries_exhausted")))
        }

        public static func sent(_ userID: String, channel: String?, attempts: Int, messageID: String, providerRef: String? = nil,
                                provider: String? = nil) -> Row {
            Row(userID: userID, channel: channel, status: .sent, attempts: attempts, messageID: messageID, providerRef: providerRef,
                provider: provider)
        }

        public static func skipped(_ userID: String, channel: String?, _ reason: SkipReason, attempts: Int, messageID: String,
                                   lastError: String? = nil) -> Row {
            Row(userID: userID, channel: channel, status: .skipped, reason: reason.rawValue, attempts: attempts, messageID: messageID,
                lastError: lastError)
        }

        public static func waiting(_ userID: String, channel: String?, _ reason: WaitReason, attempts: Int, messageID: String,
                                   lastError: String? = nil) -> Row {
            Row(userID: userID, channel: channel, status: .scheduled, reason: reason.rawValue, attempts: attempts, messageID: messageID,
                lastError: lastError)
        }

        public static func dead(_ userID: String, channel: String?, _ reason: DeadReason, attempts: Int, messageID: String,
                                lastError: String? = nil) -> Row {
            Row(userID: userID, channel: channel, status: .dead, reason: reason.rawValue, attempts: attempts, messageID: messageID,
                lastError: lastError)
        }
    }

    /// A delivery that became `dead`: recorded in `reach.dead_letters` (SPEC §3.3)
    /// in the same transaction as its row, published to Kafka afterwards.
    public struct DeadLetter: Sendable, Equatable {
        public var userID: String
        public var channel: String
        public var reason: String
        public var error: String
        public var attempts: Int
        public var payloadJSON: String
        /// The message's id, when known (it ties the letter to its campaign).
        public var messageID: String?

        public init(userID: String, channel: String, reason: String, error: String, attempts: Int, payloadJSON: String, messageID: String? = nil) {
            self.messageID = messageID
            self.userID = userID
            self.channel = channel
            self.reason = reason
            self.error = error
            self.attempts = attempts
            self.payloadJSON = payloadJSON
        }
    }

    /// `scheduled` rows untouched for longer than `olderThan`: their queue item
    /// may have been lost in a crash between writing the row and queueing it.
    public func staleScheduled(olderThan: Duration, limit: Int = 1_000) async throws -> [(campaignID: String, userID: String, channel: String, attempts: Int)] {
        try await client.query("""
            SELECT campaign_id, user_id, coalesce(channel, ''), attempts FROM reach.deliveries
            WHERE status = 'scheduled' AND updated_at < now() - make_interval(secs => $1::double precision)
            LIMIT $2
            """, [olderThan.seconds, limit]).map { ($0[0] ?? "", $0[1] ?? "", $0[2] ?? "", $0.int(3) ?? 0) }
    }

    /// Rows waiting in the delay queue for another attempt.
    public func pendingRetries(campaignID: String) async throws -> Int {
        try await client.query("SELECT count(*) FROM reach.deliveries WHERE campaign_id = $1 AND status = 'scheduled'",
                               [campaignID]).first?.int(0) ?? 0
    }

    /// The status of each (campaign, user) pair that has a row, by `pairKey`.
    public func statuses(_ pairs: [(campaignID: String, userID: String)]) async throws -> [String: String] {
        guard !pairs.isEmpty else { return [:] }
        var result: [String: String] = [:]
        for row in try await client.query("""
            SELECT d.campaign_id || chr(31) || d.user_id, d.status FROM reach.deliveries d
            JOIN unnest($1::text[], $2::text[]) AS p(campaign_id, user_id) ON d.campaign_id = p.campaign_id AND d.user_id = p.user_id
            """, [pairs.map(\.campaignID), pairs.map(\.userID)]) {
            result[row[0] ?? ""] = row[1]
        }
        return result
    }

    public static func pairKey(campaignID: String, userID: String) -> String { campaignID + "\u{1F}" + userID }

    /// Rows and dead letters of many one-user campaigns (trigger sends) in one
    /// transaction. Same rule as `record`: `sent`, `skipped`, `dead` stay.
    /// `campaignIDs`: each row's campaign, at the row's position.
    public func recordEach(rows: [Row], campaignIDs: [String], deadLetters: [(campaignID: String, letter: DeadLetter)]) async throws {
        precondition(rows.count == campaignIDs.count, "a campaign id for each row")
        guard !rows.isEmpty || !deadLetters.isEmpty else { return }
        if deadLetters.isEmpty {
            // One statement is atomic on its own: no BEGIN and COMMIT round trips.
            _ = try await client.withConnection { conn in try await Self.upsert(conn, campaignIDs: campaignIDs, rows: rows) }
            return
        }
        try await client.withTransaction { conn in
            _ = try await Self.upsert(conn, campaignIDs: campaignIDs, rows: rows)
            try await Self.insert(conn, campaignIDs: deadLetters.map(\.campaignID), deadLetters: deadLetters.map(\.letter))
        }
    }

    /// Upserts rows, each for the campaign at the same position of `campaignIDs`;
    /// a row already `sent`, `skipped` or `dead` is never overwritten. Counted in
    /// SQL: a page's 5 000 RETURNING rows need not travel back. `firstFailures`:
    /// rows that record a user's first failed provider call (attempt 1 failed:
    /// waiting for a retry, or dead from it), which the campaign's `failed` counts.
    static func upsert(_ conn: PostgresConnection, campaignIDs: [String], rows: [Row]) async throws
        -> (inserted: Int, changed: Int, byStatus: [String: Int], firstFailures: Int) {
        guard !rows.isEmpty else { return (0, 0, [:], 0) }
        var result = (inserted: 0, changed: 0, byStatus: [String: Int](), firstFailures: 0)
        for row in try await conn.query("""
            WITH changed AS (
            INSERT INTO reach.deliveries AS d
                (campaign_id, user_id, channel, status, reason, attempts, message_id, provider_ref, last_error, provider, sent_at)
            SELECT t.campaign_id, t.user_id, t.channel, t.status, t.reason, t.attempts, t.message_id, t.provider_ref, t.last_error,
                   t.provider, CASE WHEN t.status = 'sent' THEN now() END
            FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::text[], $8::text[], $9::text[], $10::text[])
                 AS t(campaign_id, user_id, channel, status, reason, attempts, message_id, provider_ref, last_error, provider)
            ON CONFLICT (campaign_id, user_id) DO UPDATE SET
                channel = excluded.channel, status = excluded.status, reason = excluded.reason,
                attempts = excluded.attempts, provider_ref = excluded.provider_ref, provider = excluded.provider,
                last_error = excluded.last_error, sent_at = excluded.sent_at, updated_at = now()
            WHERE d.status NOT IN ('sent', 'skipped', 'dead')
            RETURNING (xmax = 0) AS inserted, status,
                      attempts = 1 AND ((status = 'scheduled' AND reason = 'retry')
                                        OR (status = 'dead' AND reason IN ('provider_rejected', 'retries_exhausted'))) AS first_failure
            )
            SELECT status, count(*) FILTER (WHERE inserted) AS inserted, count(*) AS changed,
                   count(*) FILTER (WHERE first_failure) AS first_failures
            FROM changed GROUP BY status
            """, [campaignIDs, rows.map(\.userID), rows.map(\.channel), rows.map(\.status.rawValue), rows.map(\.reason), rows.map(\.attempts),
                  rows.map(\.messageID), rows.map { $0.providerRef.map(JSONText.storable) }, rows.map { $0.lastError.map(JSONText.storable) },
                  rows.map(\.provider)]) {
            result.inserted += row.int(1) ?? 0
            result.changed += row.int(2) ?? 0
            result.byStatus[row[0] ?? "", default: 0] += row.int(2) ?? 0
            result.firstFailures += row.int(3) ?? 0
        }
        return result
    }

    /// Below this many rows the upsert's one round trip beats COPY's four.
    static let copyRows = 64

    /// Rows none of which is expected to exist: `COPY` into the table under a
    /// savepoint; when one does exist after all (unique violation), back to the
    /// savepoint and through the upsert, which keeps what is final.
    static func copyOrUpsert(_ conn: PostgresConnection, campaignID: String, rows: [Row]) async throws
        -> (inserted: Int, changed: Int, byStatus: [String: Int], firstFailures: Int) {
        try await conn.query("SAVEPOINT new_rows")
        do {
            try await conn.copyIn("""
                COPY reach.deliveries (campaign_id, user_id, channel, status, reason, attempts, message_id, provider_ref, last_error,
                                       provider, sent_at) FROM STDIN
                """, text: copyText(campaignID: campaignID, rows: rows))
        } catch let error as PostgresError where error.isUniqueViolation {
            try await conn.query("ROLLBACK TO SAVEPOINT new_rows")
            return try await upsert(conn, campaignIDs: Array(repeating: campaignID, count: rows.count), rows: rows)
        }
        try await conn.query("RELEASE SAVEPOINT new_rows")
        var result = (inserted: rows.count, changed: rows.count, byStatus: [String: Int](), firstFailures: 0)
        for row in rows {
            result.byStatus[row.status.rawValue, default: 0] += 1
            if row.isFirstFailure { result.firstFailures += 1 }
        }
        return result
    }

    /// The rows in COPY's text format, in one buffer. `sent_at` is `now` for a
    /// sent row: PostgreSQL reads that as the transaction's start, as `now()`.
    static func copyText(campaignID: String, rows: [Row]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(rows.count * (campaignID.utf8.count + 120))
        for row in rows {
            CopyText.append(campaignID, into: &out, first: true)
            CopyText.append(row.userID, into: &out)
            CopyText.append(row.channel, into: &out)
            CopyText.append(row.status.rawValue, into: &out)
            CopyText.append(row.reason, into: &out)
            CopyText.append(row.attempts, into: &out)
            CopyText.append(row.messageID, into: &out)
            CopyText.append(row.providerRef.map(JSONText.storable), into: &out)
            CopyText.append(row.lastError.map(JSONText.storable), into: &out)
            CopyText.append(row.provider, into: &out)
            CopyText.append(row.status == .sent ? "now" : nil, into: &out)
            out.append(0x0A)
        }
        return out
    }

    /// Dead letters, each for the campaign at the same position; one per
    /// (campaign, user) until it is replayed.
    static func insert(_ conn: PostgresConnection, campaignIDs: [String], deadLetters: [DeadLetter]) async throws {
        guard !deadLetters.isEmpty else { return }
        try await conn.query("""
            INSERT INTO reach.dead_letters (reason, error, source, campaign_id, user_id, channel, attempts, payload)
            SELECT t.reason, t.error, 'delivery', t.campaign_id, t.user_id, t.channel, t.attempts, t.payload::jsonb
            FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::text[])
                 AS t(campaign_id, user_id, channel, reason, error, attempts, payload)
            ON CONFLICT (campaign_id, user_id) WHERE source = 'delivery' AND replayed_at IS NULL DO NOTHING
            """, [campaignIDs, deadLetters.map(\.userID), deadLetters.map(\.channel), deadLetters.map(\.reason), deadLetters.map { JSONText.storable($0.error) },
                  deadLetters.map(\.attempts), deadLetters.map(\.payloadJSON)])
    }

    /// The users of `userIDs` that already have a row, with its status.
    ///
    /// The ids' own min and max (in the key's byte order, "C") bound the index
    /// range: with `= ANY` alone the planner scans every row the campaign has
    /// so far and filters, which made a 1 000 000-user campaign quadratic.
    public func existing(campaignID: String, userIDs: [String]) async throws -> [String: String] {
        guard !userIDs.isEmpty else { return [:] }
        var result: [String: String] = [:]
        for row in try await client.query("""
            SELECT user_id, status FROM reach.deliveries
            WHERE campaign_id = $1 AND user_id = ANY($2::text[])
              AND user_id >= (SELECT min(id COLLATE "C") FROM unnest($2::text[]) AS ids(id))
              AND user_id <= (SELECT max(id COLLATE "C") FROM unnest($2::text[]) AS ids(id))
            """, [campaignID, userIDs]) {
            result[row[0] ?? ""] = row[1]
        }
        return result
    }

    /// Upserts a batch of rows and moves the campaign's checkpoint and counters
    /// in the same transaction. A row already `sent`, `skipped` or `dead` is
    /// never overwritten. A fence of a shard moves that shard's checkpoint
    /// and counters instead, and the campaign's counters. With a `fence` (the campaign runner's lease) the
    /// write is refused with `FencedOut` unless that lease is still the
    /// campaign's: the check locks the campaign row first, so a claim by
    /// another runner either waits for this transaction or makes it fail.
    /// Returns how many rows changed.
    ///
    /// `rowsAreNew`: the caller found none of these users with a row (a
    /// campaign page): they go in by `COPY`, and only if one has a row by now
    /// (another holder wrote it since) does the page take the upsert.
    @discardableResult
    public func record(campaignID: String, rows: [Row], checkpoint: String?, deadLetters: [DeadLetter] = [],
                       fence: Fence? = nil, rowsAreNew: Bool = false) async throws -> Int {
        try await client.withTransaction { conn in
            if let fence, let shard = fence.shard {
                let held = try await conn.query(
                    "SELECT 1 FROM reach.campaign_shards WHERE campaign_id = $1 AND shard = $2 AND owner = $3 AND epoch = $4 FOR UPDATE",
                    [campaignID, shard, fence.owner, fence.epoch])
                guard held.count == 1 else { throw FencedOut("page write of \(campaignID) shard \(shard)", fence: fence) }
            } else if let fence {
                let held = try await conn.query(
                    "SELECT 1 FROM reach.campaigns WHERE id = $1 AND owner = $2 AND epoch = $3 FOR UPDATE",
                    [campaignID, fence.owner, fence.epoch])
                guard held.count == 1 else { throw FencedOut("page write of \(campaignID)", fence: fence) }
            }
            let changed = rowsAreNew && rows.count >= Self.copyRows
                ? try await Self.copyOrUpsert(conn, campaignID: campaignID, rows: rows)
                : try await Self.upsert(conn, campaignIDs: Array(repeating: campaignID, count: rows.count), rows: rows)
            try await Self.insert(conn, campaignIDs: Array(repeating: campaignID, count: deadLetters.count), deadLetters: deadLetters)
            let byStatus = changed.byStatus
            let counts: [any PostgresBindable] = [changed.inserted, byStatus["sent"] ?? 0, byStatus["skipped"] ?? 0,
                                                  changed.firstFailures, byStatus["dead"] ?? 0]
            if let shard = fence?.shard {
                // A shard's page: its own checkpoint and counters, and the campaign's totals.
                try await conn.query("""
                    UPDATE reach.campaign_shards SET
                        targeted = targeted + $3, sent = sent + $4, skipped = skipped + $5, failed = failed + $6, dead = dead + $7,
                        checkpoint = coalesce($8, checkpoint), updated_at = now()
                    WHERE campaign_id = $1 AND shard = $2
                    """, [campaignID, shard] + counts + [checkpoint])
            }
            // Last, so the campaign's row (which every shard's page updates) is locked the shortest time.
            try await conn.query("""
                UPDATE reach.campaigns SET
                    targeted = targeted + $2, sent = sent + $3, skipped = skipped + $4, failed = failed + $5, dead = dead + $6,
                    checkpoint = coalesce($7, checkpoint), updated_at = now()
                WHERE id = $1
                """, [campaignID] + counts + [fence?.shard == nil ? checkpoint : nil])
            return changed.changed
        }
    }
}
