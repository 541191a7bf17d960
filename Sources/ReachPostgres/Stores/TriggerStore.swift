import ReachCore

/// `reach.triggers` as the operator API sees it: whole rules in, whole rules out.
/// Rules are validated by the caller (`TriggerRule`) before they get here.
public struct TriggerStore: Sendable {
    public let client: PostgresClient

    public init(client: PostgresClient) { self.client = client }

    public struct Row: Sendable, Equatable {
        public var id: String
        public var event: String
        /// jsonb columns as JSON text.
        public var channelsJSON: String
        public var fallbackJSON: String
        public var templateJSON: String
        public var delaySeconds: Int
        public var quietHours: Bool
        public var enabled: Bool
        public var updatedAt: String

        public init(id: String, event: String, channelsJSON: String, fallbackJSON: String, templateJSON: String,
                    delaySeconds: Int, quietHours: Bool, enabled: Bool, updatedAt: String = "") {
            self.id = id
            self.event = event
            self.channelsJSON = channelsJSON
            self.fallbackJSON = fallbackJSON
            self.templateJSON = templateJSON
            self.delaySeconds = delaySeconds
            self.quietHours = quietHours
            self.enabled = enabled
            self.updatedAt = updatedAt
        }
    }

    static let columns = """
        id, event, channels::text, fallback::text, template::text, delay_seconds, quiet_hours, enabled,
        to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
        """

    static func row(_ r: PostgresRow) -> Row {
        Row(id: r[0] ?? "", event: r[1] ?? "", channelsJSON: r[2] ?? "{}", fallbackJSON: r[3] ?? "[]", templateJSON: r[4] ?? "{}",
            delaySeconds: r.int(5) ?? 0, quietHours: r[6] == "t", enabled: r[7] == "t", updatedAt: r[8] ?? "")
    }

    /// Rules in id order after `after`, optionally only those of one event.
    public func list(event: String? = nil, after: String?, limit: Int) async throws -> [Row] {
        try await client.query("""
            SELECT \(Self.columns) FROM reach.triggers
            WHERE ($1::text IS NULL OR event = $1) AND ($2::text IS NULL OR id > $2) ORDER BY id LIMIT $3
            """, [event, after, limit]).map(Self.row)
    }

    /// Every enabled rule, in id order (what the trigger pipeline loads).
    public func enabled() async throws -> [Row] {
        try await client.query("SELECT \(Self.columns) FROM reach.triggers WHERE enabled ORDER BY id").map(Self.row)
    }

    public func get(_ id: String) async throws -> Row? {
        try await client.query("SELECT \(Self.columns) FROM reach.triggers WHERE id = $1", [id]).first.map(Self.row)
    }

    /// Inserts a new rule; nil when the id is taken.
    public func create(_ rule: Row) async throws -> Row? {
        try await client.query("""
            INSERT INTO reach.triggers (id, event, channels, fallback, template, delay_seconds, quiet_hours, enabled)
            VALUES ($1, $2, $3::jsonb, $4::jsonb, $5::jsonb, $6, $7, $8)
            ON CONFLICT (id) DO NOTHING RETURNING \(Self.columns)
            """, Self.values(rule)).first.map(Self.row)
    }

    /// Replaces the rule, or creates it; `created` tells which.
    public func put(_ rule: Row) async throws -> (row: Row, created: Bool) {
        let r = try await client.query("""
            INSERT INTO reach.triggers (id, event, channels, fallback, template, delay_seconds, quiet_hours, enabled)
            VALUES ($1, $2, $3::jsonb, $4::jsonb, $5::jsonb, $6, $7, $8)
            ON CONFLICT (id) DO UPDATE SET event = EXCLUDED.event, channels = EXCLUDED.channels, fallback = EXCLUDED.fallback,
                template = EXCLUDED.template, delay_seconds = EXCLUDED.delay_seconds, quiet_hours = EXCLUDED.quiet_hours,
                enabled = EXCLUDED.enabled, updated_at = now()
            RETURNING \(Self.columns), (xmax = 0)
            """, Self.values(rule)).first!
        return (Self.row(r), r[9] == "t")
    }

    /// false when there was no such rule.
    public func delete(_ id: String) async throws -> Bool {
        try await client.query("DELETE FROM reach.triggers WHERE id = $1", [id]).affected == 1
    }

    static func values(_ rule: Row) -> [any PostgresBindable] {
        [rule.id, rule.event, rule.channelsJSON, rule.fallbackJSON, rule.templateJSON, rule.delaySeconds, rule.quietHours, rule.enabled]
    }
}
