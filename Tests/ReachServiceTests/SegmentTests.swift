import Foundation
import ReachCore
import ReachPostgres
import Testing
import TestSupport

/// A plain-Swift reading of SPEC §4.3, to check the SQL compiler against.
func reference(_ rule: SegmentRule, _ r: (id: String, name: String?, attrs: [String: JSONValue])) -> Bool {
    switch rule {
    case .all(let rules): return rules.allSatisfy { reference($0, r) }
    case .any(let rules): return rules.contains { reference($0, r) }
    case .condition(let attr, let op, let value):
        if attr == "name" || attr == "user_id" {
            let field = attr == "name" ? r.name : r.id
            switch op {
            case .eq: return field == value.text
            case .neq: return field != value.text
            case .in: return field.map { f in value.array!.contains { $0.text == f } } ?? false
            case .exists: return (field != nil) == value.bool!
            case .gt: return field.map { $0 > value.text } ?? false
            default: return false
            }
        }
        let field = r.attrs[attr]
        switch op {
        case .eq: return field.map { $0 == value } ?? false
        case .neq: return field != value
        case .in: return field.map { f in value.array!.contains(f) } ?? false
        case .exists: return (field != nil && field != .null) == value.bool!
        case .contains: return field?.array?.contains(value) ?? false
        case .gt, .gte, .lt, .lte:
            if let a = field?.number, let b = value.number {
                return op == .gt ? a > b : op == .gte ? a >= b : op == .lt ? a < b : a <= b
            }
            if let a = field?.string, let b = value.string {
                return op == .gt ? a > b : op == .gte ? a >= b : op == .lt ? a < b : a <= b
            }
            return false
        }
    }
}

@Suite("segments from PostgreSQL: rules as bound parameters, ids, members, keyset pages")
struct SegmentTests {
    static let hostile = ["O'Brien", "x'); DROP TABLE reach.recipients; --", "a\"b\\c", "/* c */ 1=1", "名前🎉", "tab\there", "%_%"]

    func database() async throws -> (PostgresClient, [(id: String, name: String?, attrs: [String: JSONValue])]) {
        let pg = PostgresClient(url: try await TestDatabase.migrated(), poolSize: 2)
        var people: [(id: String, name: String?, attrs: [String: JSONValue])] = []
        for i in 0..<300 {
            var attrs: [String: JSONValue] = ["level": .number(Double(i % 6)), "city": .string(Self.hostile[i % Self.hostile.count])]
            if i % 4 == 0 { attrs["tags"] = .array([.string("vip"), .string(Self.hostile[i % 3])]) }
            if i % 9 == 0 { attrs["note"] = .null }
            if i % 11 == 0 { attrs[Self.hostile[1]] = .string("evil key") }
            people.append((String(format: "p%03d", i), i % 5 == 0 ? nil : Self.hostile[i % Self.hostile.count], attrs))
        }
        _ = try await pg.withConnection { conn in
            try await conn.copyIn("COPY reach.recipients (user_id, name, attrs) FROM STDIN",
                                  rows: people.map { [$0.id, $0.name, JSONValue.object($0.attrs).jsonText] })
        }
        return (pg, people)
    }

    @Test("compiled rules select exactly the rows a reference filter selects, hostile values matching literally")
    func rulesMatchReference() async throws {
        let (pg, people) = try await database()
        let source = SegmentSource(client: pg)
        var rules: [SegmentRule] = [
            .condition(attr: "level", op: .gte, value: .number(3)),
            .condition(attr: "level", op: .eq, value: .number(2)),
            .condition(attr: "level", op: .neq, value: .number(2)),
            .condition(attr: "tags", op: .contains, value: .string("vip")),
            .condition(attr: "note", op: .exists, value: .bool(false)),
            .condition(attr: "tags", op: .exists, value: .bool(true)),
            .condition(attr: "name", op: .exists, value: .bool(false)),
            .condition(attr: "level", op: .in, value: .array([.number(1), .number(5)])),
            .all([.condition(attr: "city", op: .eq, value: .string("名前🎉")),
                  .any([.condition(attr: "level", op: .gte, value: .number(3)), .condition(attr: "tags", op: .contains, value: .string("vip"))])]),
            .condition(attr: Self.hostile[1], op: .eq, value: .string("evil key")),
            .condition(attr: "name", op: .in, value: .array([.string(Self.hostile[0]), .string(Self.hostile[4])])),
        ]
        for value in Self.hostile {
            rules.append(.condition(attr: "city", op: .eq, value: .string(value)))
            rules.append(.condition(attr: "name", op: .eq, value: .string(value)))
            rules.append(.condition(attr: "tags", op: .contains, value: .string(value)))
        }
        for rule in rules {
            var got: [String] = []
            var after: String?
            while true {
                let page = try await source.page(.rule(rule), after: after, limit: 37)
                guard let last = page.last else { break }
                got += page.map(\.userID)
                after = last.userID
            }
            let expected = people.filter { reference(rule, $0) }.map(\.id)
            #expect(got == expected, "\(rule): \(got.count) vs \(expected.count)")
        }
        #expect(try await pg.query("SELECT count(*) FROM reach.recipients").first?.int(0) == 300, "the table survived")
    }

    @Test("segments by id use the stored rule or the member list; user_ids keep unknown users; pages never repeat")
    func segmentForms() async throws {
        let (pg, _) = try await database()
        try await pg.query(#"INSERT INTO reach.segments (id, name, rule) VALUES ('high', 'high', '{"attr":"level","op":"gte","value":4}')"#)
        try await pg.query("INSERT INTO reach.segments (id, name) VALUES ('listed', 'listed')")
        try await pg.query("INSERT INTO reach.segment_members VALUES ('listed', 'p001'), ('listed', 'p002'), ('listed', 'ghost')")
        let source = SegmentSource(client: pg)
        let high = try await source.resolve(.id("high"))
        #expect(high == .rule(.condition(attr: "level", op: .gte, value: .number(4))))
        #expect(try await source.preview(high).count == 100)
        let listed = try await source.resolve(.id("listed"))
        let members = try await source.page(listed, after: nil, limit: 10)
        #expect(members.map(\.userID) == ["ghost", "p001", "p002"])
        #expect(members[0].phone == nil && members[0].attrs.isEmpty, "a member missing from recipients has no contact fields")
        let byID = try await source.page(.userIDs(["p005", "zz", "p001"]), after: "p001", limit: 10)
        #expect(byID.map(\.userID) == ["p005", "zz"])
        await #expect(throws: SegmentSource.NotFound.self) { try await source.resolve(.id("nope")) }
    }

    @Test("pages by members, user_ids and shard range carry each user's own opt-outs and fields, as a per-user lookup finds them")
    func pagesCarryOptOuts() async throws {
        let (pg, _) = try await database()
        try await pg.query("INSERT INTO reach.segments (id, name) VALUES ('all', 'all')")
        // Members: every recipient, and ghosts between them (no recipients row), some with opt-outs of their own.
        try await pg.query("""
            INSERT INTO reach.segment_members SELECT 'all', user_id FROM reach.recipients
            UNION ALL SELECT 'all', 'p' || lpad(g::text, 3, '0') || 'x' FROM generate_series(0, 299, 13) g
            """)
        try await pg.query("""
            INSERT INTO reach.preferences (user_id, channel, opted_out)
            SELECT user_id, 'sms', true FROM reach.segment_members WHERE length(user_id) > 0 AND abs(hashtext(user_id)) % 5 = 0
            UNION ALL SELECT user_id, 'push', abs(hashtext(user_id)) % 2 = 0 FROM reach.segment_members WHERE abs(hashtext(user_id)) % 3 = 0
            UNION ALL SELECT user_id, '*', true FROM reach.segment_members WHERE abs(hashtext(user_id)) % 17 = 0
            """)
        var reference: [String: (optedOut: Set<String>, name: String?)] = [:]
        for row in try await pg.query("""
            SELECT m.user_id, (SELECT string_agg(channel, ',') FROM reach.preferences p WHERE p.user_id = m.user_id AND p.opted_out), r.name
            FROM reach.segment_members m LEFT JOIN reach.recipients r USING (user_id)
            """) {
            reference[row[0]!] = (Set((row[1] ?? "").split(separator: ",").map(String.init)), row[2])
        }
        #expect(reference.values.contains { $0.optedOut.count >= 2 } && reference.values.contains { $0.optedOut.isEmpty })
        let source = SegmentSource(client: pg)
        func pages(_ segment: SegmentSource.Resolved, after: String? = nil, upTo upper: String? = nil, dense: Bool = false) async throws -> [Recipient] {
            var all: [Recipient] = []
            var cursor = after
            while true {
                let page = try await source.page(segment, after: cursor, upTo: upper, limit: 37, dense: dense)
                guard let last = page.last else { return all }
                all += page
                cursor = last.userID
            }
        }
        #expect(try await source.isDense(.members(segmentID: "all")), "every recipient and some ghosts")
        for dense in [true, false] {
            let members = try await pages(.members(segmentID: "all"), dense: dense)
            #expect(members.count == reference.count)
            for r in members {
                #expect(r.optedOut == reference[r.userID]?.optedOut, "\(r.userID), dense \(dense)")
                #expect(r.name == reference[r.userID]?.name ?? nil, "\(r.userID), dense \(dense)")
            }
            // A shard's range: (p100, p200].
            let shard = try await pages(.members(segmentID: "all"), after: "p100", upTo: "p200", dense: dense)
            #expect(shard.map(\.userID) == reference.keys.filter { $0 > "p100" && $0 <= "p200" }.sorted())
            #expect(shard.allSatisfy { $0.optedOut == reference[$0.userID]?.optedOut })
        }
        try await pg.query("INSERT INTO reach.segments (id, name) VALUES ('few', 'few')")
        try await pg.query("INSERT INTO reach.segment_members SELECT 'few', user_id FROM reach.recipients WHERE user_id < 'p050'")
        #expect(try await !source.isDense(.members(segmentID: "few")), "a sixth of the recipients is read by probes")
        #expect(try await !source.isDense(.userIDs(["p001"])))
        let ids = Array(reference.keys.shuffled().prefix(120)) + ["nobody"]
        let listed = try await pages(.userIDs(ids))
        #expect(Set(listed.map(\.userID)) == Set(ids))
        #expect(listed.allSatisfy { $0.optedOut == (reference[$0.userID]?.optedOut ?? []) })
    }
}
