/// `reach.audit`: one row per operator API write call.
public struct AuditStore: Sendable {
    public let client: PostgresClient

    public init(client: PostgresClient) { self.client = client }

    public struct Entry: Sendable, Equatable {
        public var id: Int
        public var at: String
        public var tokenName: String?
        public var client: String?
        public var method: String
        public var route: String
        public var target: String?
        public var status: Int
        /// Already masked by the caller.
        public var body: String?

        public init(id: Int = 0, at: String = "", tokenName: String?, client: String?, method: String, route: String,
                    target: String?, status: Int, body: String?) {
            self.id = id
            self.at = at
            self.tokenName = tokenName
            self.client = client
            self.method = method
            self.route = route
            self.target = target
            self.status = status
            self.body = body
        }
    }

    public func record(_ e: Entry) async throws {
        try await client.query("""
            INSERT INTO reach.audit (token_name, client, method, route, target, status, body) VALUES ($1, $2, $3, $4, $5, $6, $7)
            """, [e.tokenName, e.client, e.method, e.route, e.target, e.status, e.body])
    }

    /// Newest first, with ids below `before`; optional filters.
    public func list(token: String?, target: String?, since: String?, before: Int?, limit: Int) async throws -> [Entry] {
        try await client.query("""
            SELECT id, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), token_name, client, method, route, target, status, body
            FROM reach.audit
            WHERE ($1::text IS NULL OR token_name = $1) AND ($2::text IS NULL OR target = $2)
              AND ($3::timestamptz IS NULL OR at >= $3::timestamptz) AND ($4::bigint IS NULL OR id < $4)
            ORDER BY id DESC LIMIT $5
            """, [token, target, since, before, limit]).map { r in
            Entry(id: r.int(0) ?? 0, at: r[1] ?? "", tokenName: r[2], client: r[3], method: r[4] ?? "", route: r[5] ?? "",
                  target: r[6], status: r.int(7) ?? 0, body: r[8])
        }
    }
}
