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
                INSERT INTO reach.dead_letters (reason, error, source, payload, topic, kafka_partition, kafka_offset)
                VALUES ($1, $2, 'input', $3::jsonb, $4, $5, $6)
                ON CONFLICT (topic, kafka_partition, kafka_offset) WHERE source = 'input' DO NOTHING
                RETURNING id)
            SELECT id FROM inserted
            UNION ALL
            SELECT id FROM reach.dead_letters WHERE source = 'input' AND topic = $4 AND kafka_partition = $5 AND kafka_offset = $6
            LIMIT 1
            """, [reason, error, payloadJSON, topic, Int(partition), offset])
        return rows.first?.int(0) ?? 0
    }
}
