/// `reach.inbox`: in-app messages, one per (campaign_id, user_id).
public struct InboxStore: Sendable {
    public let client: PostgresClient

    public init(client: PostgresClient) { self.client = client }

    public struct Message: Sendable, Equatable {
        public var id: Int
        public var userID: String
        public var campaignID: String
        public var title: String
        public var body: String
        public var createdAt: String
    }

    /// Inserts a batch in one statement. A message that already exists (a
    /// resend after a crash) is returned as stored, not inserted twice;
    /// `isNew` tells which ones were inserted now.
    public func insert(campaignID: String, items: [(userID: String, title: String, body: String)]) async throws -> [(message: Message, isNew: Bool)] {
        guard !items.isEmpty else { return [] }
        let rows = try await client.query("""
            WITH input AS (SELECT * FROM unnest($2::text[], $3::text[], $4::text[]) AS t(user_id, title, body)),
            inserted AS (
                INSERT INTO reach.inbox (user_id, campaign_id, title, body)
                SELECT user_id, $1, title, body FROM input
                ON CONFLICT (campaign_id, user_id) DO NOTHING
                RETURNING id, user_id, campaign_id, title, body, created_at)
            SELECT id, user_id, campaign_id, title, body,
                   to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), true FROM inserted
            UNION ALL
            SELECT i.id, i.user_id, i.campaign_id, i.title, i.body,
                   to_char(i.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), false
            FROM reach.inbox i JOIN input USING (user_id)
            WHERE i.campaign_id = $1 AND NOT EXISTS (SELECT 1 FROM inserted WHERE inserted.user_id = i.user_id)
            """, [campaignID, items.map(\.userID), items.map(\.title), items.map(\.body)])
        return rows.map { row in
            (Message(id: row.int(0) ?? 0, userID: row[1] ?? "", campaignID: row[2] ?? "", title: row[3] ?? "",
                     body: row[4] ?? "", createdAt: row[5] ?? ""), row[6] == "t")
        }
    }
}
