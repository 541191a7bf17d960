import Foundation
import ReachCore

/// Streams a segment's recipients from PostgreSQL in keyset pages ordered by
/// `user_id`, so memory stays flat and a run can resume after any page.
public struct SegmentSource: Sendable {
    public let client: PostgresClient

    public init(client: PostgresClient) { self.client = client }

    /// How the segment's users are found.
    public enum Resolved: Sendable, Equatable {
        case members(segmentID: String)
        case rule(SegmentRule)
        case userIDs([String])
    }

    public struct NotFound: Error, CustomStringConvertible {
        public let segmentID: String
        public var description: String { "segment '\(segmentID)' does not exist" }
    }

    public func resolve(_ selector: SegmentSelector) async throws -> Resolved {
        switch selector {
        case .userIDs(let ids): return .userIDs(ids)
        case .rule(let rule): return .rule(rule)
        case .id(let id):
            guard let row = try await client.query("SELECT rule::text FROM reach.segments WHERE id = $1", [id]).first else {
                throw NotFound(segmentID: id)
            }
            guard let ruleText = row[0] else { return .members(segmentID: id) }
            let json = try JSONParser.parse(ruleText)
            return .rule(try SegmentRule.parse(json, path: "segments[\(id)].rule"))
        }
    }

    /// The selected columns: `u` is the row that lists the user, `r` the recipients row;
    /// `optedOut`: the expression of the user's opted-out channels (comma-separated).
    static func columns(r: String, optedOut: String = """
        (SELECT string_agg(p.channel, ',') FROM reach.preferences p WHERE p.user_id = u.user_id AND p.opted_out)
        """) -> String {
        "u.user_id, \(r).name, \(r).phone, \(r).email, \(r).push_token, \(r).timezone, \(r).locale, \(r).attrs::text, \(optedOut) AS opted_out"
    }

    /// A page of listed ids with an index probe per user for the recipient and for the opt-outs.
    static func probed(ids: String, after: String, upper: String?) -> String {
        """
        SELECT \(columns(r: "r")) FROM (\(ids)) u
        LEFT JOIN reach.recipients r ON r.user_id = u.user_id AND r.user_id > \(after)\(upper.map { " AND r.user_id <= \($0)" } ?? "")
        ORDER BY u.user_id
        """
    }

    /// A page of a dense member segment joined to its recipients and opt-outs
    /// by ranges: `ids` is the page's ordered id subquery, used twice — once as
    /// the page, once for its last id, which bounds the range scans of
    /// `reach.recipients` and `reach.preferences` (merge joins). For a segment of
    /// every user, a subquery per user for the opt-outs and an index probe per
    /// user for the recipient cost 30 000 buffers and 18 ms a page of 5 000; the
    /// ranges 130 buffers and 7 ms. For a sparse segment the range holds mostly
    /// other users (1 % of 1 000 000: 125 ms against 37 ms), so only a segment
    /// holding at least half the recipients (`isDense`) is read this way
    /// (README "Per-message cost").
    static func rangeJoined(ids: String, after: String, upper: String?) -> String {
        let last = "(SELECT max(user_id) FROM (\(ids)) b)"
        func top(_ alias: String) -> String { upper.map { " AND \(alias).user_id <= \($0)" } ?? "" }
        return """
            SELECT \(columns(r: "r", optedOut: "o.opted_out")) FROM (\(ids)) u
            LEFT JOIN reach.recipients r ON r.user_id = u.user_id AND r.user_id > \(after) AND r.user_id <= \(last)\(top("r"))
            LEFT JOIN (SELECT p.user_id, string_agg(p.channel, ',') AS opted_out FROM reach.preferences p
                       WHERE p.opted_out AND p.user_id > \(after) AND p.user_id <= \(last)\(top("p"))
                       GROUP BY p.user_id) o ON o.user_id = u.user_id
            ORDER BY u.user_id
            """
    }

    /// Up to `limit` recipients with `user_id > after`, in `user_id` order.
    /// Users listed by id or membership but missing from `reach.recipients`
    /// come back with no contact fields (they end as `no_address`).
    ///
    /// The page of ids is cut first, and the recipients side carries the same
    /// lower bound: without it PostgreSQL merge-joins from the start of
    /// `reach.recipients` on every page (the benchmark's 1 000 000-recipient
    /// run read half a million index entries per page at its midpoint).
    ///
    /// `dense`: the segment holds most recipients (`isDense`), so its pages are read by range.
    public func page(_ segment: Resolved, after: String?, upTo upper: String? = nil, limit: Int, dense: Bool = false) async throws -> [Recipient] {
        let (sql, parameters) = Self.pageQuery(segment, after: after, upTo: upper, limit: limit, dense: dense)
        // Each row's attrs are parsed here: a page of 5 000 yields its thread now and then.
        var recipients: [Recipient] = []
        for (index, row) in try await client.query(sql, parameters).enumerated() {
            if index > 0, index % 1_000 == 0 { await Task.yield() }
            recipients.append(Self.recipient(row))
        }
        return recipients
    }

    /// Whether a member segment lists at least half of `reach.recipients` (by
    /// PostgreSQL's estimate of its rows, or their count before the first
    /// ANALYZE): its pages are then read by range.
    /// Asked once per run; other segments are never dense.
    public func isDense(_ segment: Resolved) async throws -> Bool {
        guard case .members(let id) = segment else { return false }
        return try await client.query("""
            SELECT (SELECT count(*) FROM reach.segment_members WHERE segment_id = $1)::float8
                   >= 0.5 * greatest(1, (SELECT CASE WHEN reltuples < 0 THEN (SELECT count(*) FROM reach.recipients)::float8 ELSE reltuples END
                                         FROM pg_class WHERE oid = 'reach.recipients'::regclass))
            """, [id]).first?[0] == "t"
    }

    /// The page query; `upper` (inclusive) bounds a shard's range, and is
    /// written into the SQL only when there is one, so the index scan stops at
    /// the shard's end instead of filtering the rest of the segment.
    public static func pageQuery(_ segment: Resolved, after: String?, upTo upper: String? = nil, limit: Int,
                                 dense: Bool = false) -> (String, [any PostgresBindable]) {
        let after = after ?? ""
        // Member and id-list pages: $2 is the lower bound, $3 the limit, $4 (only with a shard) the upper.
        let top = upper == nil ? nil : "$4"
        let bound = top.map { " AND user_id <= \($0)" } ?? ""
        let bounds: [any PostgresBindable] = [after, limit] + (upper.map { [$0] } ?? [])
        switch segment {
        case .members(let id):
            let ids = "SELECT user_id FROM reach.segment_members WHERE segment_id = $1 AND user_id > $2\(bound) ORDER BY user_id LIMIT $3"
            return (dense ? rangeJoined(ids: ids, after: "$2", upper: top) : probed(ids: ids, after: "$2", upper: top), [id] + bounds)
        case .userIDs(let ids):
            let page = "SELECT DISTINCT user_id FROM unnest($1::text[]) AS ids(user_id) WHERE user_id > $2\(bound) ORDER BY user_id LIMIT $3"
            return (probed(ids: page, after: "$2", upper: top), [ids] + bounds)
        case .rule(let rule):
            let sql = rule.sql(alias: "u", firstParameter: upper == nil ? 3 : 4)
            return ("""
                SELECT \(Self.columns(r: "u")) FROM reach.recipients u
                WHERE u.user_id > $1\(upper == nil ? "" : " AND u.user_id <= $3") AND \(sql.predicate) ORDER BY u.user_id LIMIT $2
                """, [after, limit] + (upper.map { [$0] } ?? []) + sql.parameters)
        }
    }

    /// How a segment is cut into shards: the users it holds (`count`, exact)
    /// and the ranges. The bounds are quantiles of a sample of the segment's
    /// ids (`TABLESAMPLE SYSTEM`, about `sampleSize` rows, in PostgreSQL's own
    /// order of the id column, so the ranges mean what its index means); a
    /// sample too small for the shards wanted is replaced by every id of the
    /// segment. Ranges only need to be sorted and disjoint: uneven ones cost
    /// balance, never correctness.
    public struct Cut: Sendable, Equatable {
        public var count: Int
        public var ranges: [ShardRange]
    }

    public func cut(_ segment: Resolved, maxShards: Int, minimumPerShard: Int, sampleSize: Int = 20_000) async throws -> Cut {
        let count: Int
        switch segment {
        case .members(let id):
            count = try await client.query("SELECT count(*) FROM reach.segment_members WHERE segment_id = $1", [id]).first?.int(0) ?? 0
        case .userIDs(let ids):
            count = Set(ids).count
        case .rule(let rule):
            let sql = rule.sql(alias: "u", firstParameter: 1)
            count = try await client.query("SELECT count(*) FROM reach.recipients u WHERE \(sql.predicate)", sql.parameters).first?.int(0) ?? 0
        }
        let shards = ShardPlan.count(recipients: count, maxShards: maxShards, minimumPerShard: minimumPerShard)
        guard shards > 1 else { return Cut(count: count, ranges: [ShardRange(index: 0, lower: "", upper: nil)]) }
        var sample = try await self.sample(segment, size: sampleSize, everyID: false)
        if sample.count < shards * 20 { sample = try await self.sample(segment, size: sampleSize, everyID: true) }
        let bounds = ShardPlan.bounds(sortedSample: sample, count: shards)
        return Cut(count: count, ranges: ShardRange.ranges(bounds: bounds))
    }

    /// A sorted sample of the segment's ids: about `size` of them, or with
    /// `everyID` each `n/size`-th of all of them (one index-only pass).
    func sample(_ segment: Resolved, size: Int, everyID: Bool) async throws -> [String] {
        func percent(_ table: String) async throws -> Double {
            let rows = try await client.query("SELECT greatest(reltuples, 1)::float8 FROM pg_class WHERE oid = $1::regclass", [table])
            let tuples = Double(rows.first?[0] ?? "") ?? 1
            return min(100, max(0.01, 100 * Double(size) / tuples))
        }
        let rows: PostgresRows
        switch segment {
        case .userIDs(let ids):
            // ≤ 10 000 ids: all of them, sorted by PostgreSQL (its collation orders the ranges, not Swift's).
            rows = try await client.query("SELECT DISTINCT u FROM unnest($1::text[]) AS ids(u) ORDER BY u", [ids])
        case .members(let id):
            if everyID {
                rows = try await client.query("""
                    SELECT user_id FROM (SELECT user_id, row_number() OVER (ORDER BY user_id) AS n, count(*) OVER () AS total
                                         FROM reach.segment_members WHERE segment_id = $1) s
                    WHERE n % greatest(1, total / $2) = 0 ORDER BY user_id
                    """, [id, size])
            } else {
                rows = try await client.query("""
                    SELECT user_id FROM reach.segment_members TABLESAMPLE SYSTEM ($2::float8) WHERE segment_id = $1 ORDER BY user_id
                    """, [id, try await percent("reach.segment_members")])
            }
        case .rule(let rule):
            let sql = rule.sql(alias: "u", firstParameter: 2)
            if everyID {
                rows = try await client.query("""
                    SELECT user_id FROM (SELECT u.user_id, row_number() OVER (ORDER BY u.user_id) AS n, count(*) OVER () AS total
                                         FROM reach.recipients u WHERE \(sql.predicate)) s
                    WHERE n % greatest(1, total / $1) = 0 ORDER BY user_id
                    """, [size] + sql.parameters)
            } else {
                rows = try await client.query("""
                    SELECT u.user_id FROM reach.recipients u TABLESAMPLE SYSTEM ($1::float8)
                    WHERE \(sql.predicate) ORDER BY u.user_id
                    """, [try await percent("reach.recipients")] + sql.parameters)
            }
        }
        return rows.compactMap { $0[0] }
    }

    /// How many users the segment holds, and the first few ids (preview).
    /// Both statements run under a server-side `statement_timeout`, so a
    /// rule that matches half the table cannot hold a connection for long:
    /// past it PostgreSQL cancels the statement (SQLSTATE 57014, `isStatementTimeout`).
    public func preview(_ segment: Resolved, sample: Int = 20, timeout: Duration = .seconds(5)) async throws -> (count: Int, sample: [String]) {
        try await client.withTransaction { conn in
            try await conn.query("SELECT set_config('statement_timeout', $1, true)", ["\(max(1, Int(timeout.seconds * 1000)))ms"])
            let (pageSQL, pageParameters) = Self.pageQuery(segment, after: nil, limit: sample)
            let first = try await conn.query(pageSQL, pageParameters).map { $0[0] ?? "" }
            let count: Int
            switch segment {
            case .members(let id):
                count = try await conn.query("SELECT count(*) FROM reach.segment_members WHERE segment_id = $1", [id]).first?.int(0) ?? 0
            case .userIDs(let ids):
                count = Set(ids).count
            case .rule(let rule):
                let sql = rule.sql(alias: "u", firstParameter: 1)
                count = try await conn.query("SELECT count(*) FROM reach.recipients u WHERE \(sql.predicate)", sql.parameters).first?.int(0) ?? 0
            }
            return (count, first)
        }
    }

    static func recipient(_ row: PostgresRow) -> Recipient {
        var attrs: [String: JSONValue] = [:]
        if let text = row[7], let json = try? JSONParser.parse(text), let object = json.object {
            attrs = object
        }
        let optedOut = row[8].map { Set($0.split(separator: ",").map(String.init)) } ?? []
        return Recipient(userID: row[0] ?? "", name: row[1], phone: row[2], email: row[3], pushToken: row[4],
                         timezone: row[5], locale: row[6], attrs: attrs, optedOut: optedOut)
    }
}
