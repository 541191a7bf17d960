/// `reach.dead_letters` (SPEC §3.3).
public struct DeadLetterStore: Sendable {
    public let client: PostgresClient

    public init(client: PostgresClient) { self.client = client }

    /// Records an invalid Kafka message once per (topic, partition, offset):
    /// a redelivered message does not make a second row. `payloadJSON` is the
    /// JSON value to store (for raw text, a JSON string). Returns the row's id.
    @discardableResult
    public func recordInput(topic: String, partition: Int32, offset: Int64, reason: String, error: String,
                            payloadJSON: String) async throws -> Int {
        let rows = try await client.query("""
            WITH inserted AS (
                INSERT INTO reach.dead_letters (reason, error, source, payload, topic, kafka_partition, kafka_offset, published_at)
                VALUES ($1, $2, 'input', $3::jsonb, $4, $5, $6, now())
                ON CONFLICT (topic, kafka_partition, kafka_offset) WHERE source = 'input' DO NOTHING
                RETURNING id)
            SELECT id FROM inserted
            UNION ALL
            SELECT id FROM reach.dead_letters WHERE source = 'input' AND topic = $4 AND kafka_partition = $5 AND kafka_offset = $6
            LIMIT 1
            """, [reason, error, payloadJSON, topic, Int(partition), offset])
        return rows.first?.int(0) ?? 0
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
