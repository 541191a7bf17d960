import ReachCore
@testable import ReachPostgres
import Testing
import TestSupport

/// A campaign page's rows go in by COPY; a page some of whose users got a
/// row since it was read takes the upsert, which keeps what is final.
@Suite("page writes: COPY for new rows, the upsert when some exist")
struct PageWriteTests {
    func setUp(_ id: String) async throws -> (PostgresClient, DeliveryStore) {
        let pg = PostgresClient(url: try await TestDatabase.migrated(), poolSize: 2)
        try await pg.query("INSERT INTO reach.campaigns (id, spec, state) VALUES ($1, '{\"kind\":\"campaign\"}'::jsonb, 'running')", [id])
        return (pg, DeliveryStore(client: pg))
    }

    /// 200 users: every 25th is dead, the other tenths wait for a retry after their first failed call, the rest are sent.
    func page(_ prefix: String = "u") -> [DeliveryStore.Row] {
        (0..<200).map { i in
            let user = "\(prefix)\(String(1000 + i))"
            if i % 25 == 0 { return .dead(user, channel: "sms", .providerRejected, attempts: 1, messageID: "m-\(user)", lastError: "400 bad\tnumber\n\\x") }
            if i % 10 == 0 { return .waiting(user, channel: "sms", .retry, attempts: 1, messageID: "m-\(user)", lastError: "503 busy\u{0}") }
            return .sent(user, channel: "sms", attempts: 1, messageID: "m-\(user)", providerRef: "ref-\(i)", provider: "main")
        }
    }

    @Test("a page of new rows: every row, exact text, sent_at from the transaction, counters and checkpoint")
    func copiesNewRows() async throws {
        let (pg, store) = try await setUp("pw-1")
        let rows = page()
        #expect(rows.count >= DeliveryStore.copyRows)
        let changed = try await store.record(campaignID: "pw-1", rows: rows, checkpoint: "u1199", rowsAreNew: true)
        #expect(changed == 200)
        let counts = try await pg.query("SELECT status, count(*), count(sent_at) FROM reach.deliveries WHERE campaign_id = 'pw-1' GROUP BY status ORDER BY status")
        #expect(counts.map { [$0[0] ?? "", $0[1] ?? "", $0[2] ?? ""] } == [["dead", "8", "0"], ["scheduled", "16", "0"], ["sent", "176", "176"]])
        let stored = Array(try await pg.query("""
            SELECT last_error, provider, provider_ref, attempts, reason, sent_at >= created_at - interval '1 second'
            FROM reach.deliveries WHERE campaign_id = 'pw-1' AND user_id IN ('u1000', 'u1010', 'u1001') ORDER BY user_id
            """))
        #expect(stored[0][0] == "400 bad\tnumber\n\\x" && stored[0][4] == "provider_rejected")
        #expect(stored[1][0] == nil && stored[1][1] == "main" && stored[1][2] == "ref-1" && stored[1][3] == "1" && stored[1][5] == "t")
        #expect(stored[2][0] == "503 busy\u{FFFD}", "NUL is not storable: replaced, as the upsert does")
        let campaign = try await pg.query("SELECT targeted, sent, skipped, failed, dead, checkpoint FROM reach.campaigns WHERE id = 'pw-1'")
        // failed: first failed calls (the 16 waiting and the 8 dead of attempt 1).
        #expect(campaign.first.map { row in (0..<6).map { row[$0] ?? "" } } == ["200", "176", "0", "24", "8", "u1199"])
    }

    @Test("a page some of whose users have rows by now: the upsert keeps final rows, counts only what changed")
    func fallsBackWhenRowsExist() async throws {
        let (pg, store) = try await setUp("pw-2")
        // Another holder wrote three of the page's users since it was read: two final, one waiting.
        try await store.record(campaignID: "pw-2", rows: [
            .sent("u1001", channel: "push", attempts: 1, messageID: "m-u1001", providerRef: "theirs"),
            .dead("u1002", channel: "push", .retriesExhausted, attempts: 3, messageID: "m-u1002"),
            .waiting("u1003", channel: "push", .retry, attempts: 2, messageID: "m-u1003"),
        ], checkpoint: nil)
        let changed = try await store.record(campaignID: "pw-2", rows: page(), checkpoint: "u1199", rowsAreNew: true)
        #expect(changed == 198, "every row but the two final ones")
        #expect(try await pg.query("SELECT count(*) FROM reach.deliveries WHERE campaign_id = 'pw-2'").first?.int(0) == 200)
        let kept = try await pg.query("SELECT user_id, channel, status, provider_ref FROM reach.deliveries WHERE user_id IN ('u1001', 'u1002', 'u1003') ORDER BY user_id")
        #expect(kept.map { [$0[0] ?? "", $0[1] ?? "", $0[2] ?? "", $0[3] ?? ""] } == [
            ["u1001", "push", "sent", "theirs"], ["u1002", "push", "dead", ""], ["u1003", "sms", "sent", "ref-3"],
        ])
        #expect(try await pg.query("SELECT targeted, checkpoint FROM reach.campaigns WHERE id = 'pw-2'").first.map { [$0[0], $0[1]] }
                == ["200", "u1199"], "3 + the 197 new; the page's checkpoint written in the same transaction")
    }

    @Test("delivery keys compare in byte order: existing rows are found in a database whose collation orders ids otherwise")
    func keysInByteOrder() async throws {
        // An ICU database orders "a1" before "B1"; bytes order "B1" first. The existing-row
        // lookup bounds its index range by the page's min and max id: in the database's
        // order those would make an empty range over the "C" key, and every row would look new.
        let base = try TestEnvironment.postgresAdminURL()
        let admin = PostgresClient(url: base, poolSize: 1)
        let name = "t_" + TestEnvironment.unique("icu").replacingOccurrences(of: "-", with: "_")
        try await admin.query("CREATE DATABASE \(name) TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'")
        let pg = PostgresClient(url: String(base[..<base.lastIndex(of: "/")!]) + "/" + name, poolSize: 2)
        try await Migrator(client: pg).run()
        #expect(try await pg.query("SELECT 'a1' < 'B1'").first?[0] == "t", "the database's own order")
        let collations = try await pg.query("""
            SELECT attname, collname FROM pg_attribute a JOIN pg_collation c ON c.oid = a.attcollation
            WHERE attrelid = 'reach.deliveries'::regclass AND attname IN ('campaign_id', 'user_id') ORDER BY attname
            """)
        #expect(collations.map { [$0[0] ?? "", $0[1] ?? ""] } == [["campaign_id", "C"], ["user_id", "C"]])
        let store = DeliveryStore(client: pg)
        try await pg.query("INSERT INTO reach.campaigns (id, spec, state) VALUES ('icu', '{\"kind\":\"campaign\"}'::jsonb, 'running')")
        try await store.record(campaignID: "icu", rows: [
            .sent("B1", channel: "sms", attempts: 1, messageID: "m-B1"), .waiting("a1", channel: "sms", .retry, attempts: 1, messageID: "m-a1"),
        ], checkpoint: nil)
        #expect(try await store.existing(campaignID: "icu", userIDs: ["a1", "B1", "b0"]) == ["a1": "scheduled", "B1": "sent"])
        #expect(try await pg.query("SELECT string_agg(user_id, ',' ORDER BY user_id) FROM reach.deliveries").first?[0] == "B1,a1",
                "the key's order is bytes")
    }
}
