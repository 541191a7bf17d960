import ReachCore

/// `reach.inbox`: in-app messages, one per (campaign_id, user_id).
public struct InboxStore: Sendable {
    public let client: PostgresClient

    public init(client: PostgresClient) { self.client = client }

    public typealias Message = InboxMessage

    /// Inserts a batch in one statement. A message that already exists (a
    /// resend after a crash) is returned as stored, not inserted twice;
    /// `isNew` tells which ones were inserted now.
    public func insert(campaignID: String, items: [(userID: String, title: String, body: String)]) async throws -> [(message: Message, isNew: Bool)] {
        try await insert(items.map { (campaignID, $0.userID, $0.title, $0.body) })
    }

    /// Stores messages of any number of campaigns in one statement (a batch of
    /// trigger sends is one campaign per event): each (campaign, user) once; a
    /// row already there is returned as found, not inserted again.
    public func insert(_ items: [(campaignID: String, userID: String, title: String, body: String)]) async throws -> [(message: Message, isNew: Bool)] {
        guard !items.isEmpty else { return [] }
        let rows = try await client.query("""
            WITH input AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS t(campaign_id, user_id, title, body)),
            inserted AS (
                INSERT INTO reach.inbox (user_id, campaign_id, title, body)
                SELECT user_id, campaign_id, title, body FROM input
                ON CONFLICT (campaign_id, user_id) DO NOTHING
                RETURNING id, user_id, campaign_id, title, body, created_at)
            SELECT id, user_id, campaign_id, title, body,
                   to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), true FROM inserted
            UNION ALL
            SELECT i.id, i.user_id, i.campaign_id, i.title, i.body,
                   to_char(i.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), false
            FROM reach.inbox i JOIN input USING (campaign_id, user_id)
            WHERE NOT EXISTS (SELECT 1 FROM inserted WHERE inserted.campaign_id = i.campaign_id AND inserted.user_id = i.user_id)
            """, [items.map(\.campaignID), items.map(\.userID), items.map(\.title), items.map(\.body)])
        return rows.map { row in
            (Message(id: row.int(0) ?? 0, userID: row[1] ?? "", campaignID: row[2] ?? "", title: row[3] ?? "",
                     body: row[4] ?? "", createdAt: row[5] ?? ""), row[6] == "t")
        }
    }

    /// A message as the user's inbox lists it.
    public struct Entry: Sendable, Equatable {
        public var message: Message
        public var readAt: String?
    }

    static let entryColumns = """
        id, user_id, campaign_id, title, body, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        to_char(read_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
        """

    static func entry(_ r: PostgresRow) -> Entry {
        Entry(message: Message(id: r.int(0) ?? 0, userID: r[1] ?? "", campaignID: r[2] ?? "", title: r[3] ?? "", body: r[4] ?? "",
                               createdAt: r[5] ?? ""), readAt: r[6])
    }

    /// The user's messages newest first (ids below `before`), and how many are unread in all.
    public func list(userID: String, unreadOnly: Bool, before: Int?, limit: Int) async throws -> (items: [Entry], unread: Int) {
        let items = try await client.query("""
            SELECT \(Self.entryColumns) FROM reach.inbox
            WHERE user_id = $1 AND ($2::bigint IS NULL OR id < $2) AND (NOT $3 OR read_at IS NULL)
            ORDER BY id DESC LIMIT $4
            """, [userID, before, unreadOnly, limit]).map(Self.entry)
        let unread = try await client.query("SELECT count(*) FROM reach.inbox WHERE user_id = $1 AND read_at IS NULL", [userID]).first?.int(0) ?? 0
        return (items, unread)
    }

    /// Marks the message read (the first time only: `read_at` keeps the first read); nil when the user has no such message.
    public func markRead(userID: String, id: Int) async throws -> Entry? {
        try await client.query("""
            UPDATE reach.inbox SET read_at = coalesce(read_at, now()) WHERE user_id = $1 AND id = $2 RETURNING \(Self.entryColumns)
            """, [userID, id]).first.map(Self.entry)
    }
}
