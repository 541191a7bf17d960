import ReachPostgres
import Testing
import TestSupport

@Suite("reachd migrate: schema reach, versioned and idempotent")
struct MigratorTests {
    static let tables = ["recipients", "preferences", "segments", "segment_members", "campaigns",
                         "deliveries", "inbox", "audit", "dead_letters", "triggers", "schema_migrations", "campaign_shards"]

    @Test("creates every SPEC §4 table; a second run applies nothing")
    func createsThenNoOp() async throws {
        let pg = PostgresClient(url: try await freshDatabase(), poolSize: 1)
        let migrator = Migrator(client: pg)
        #expect(try await migrator.currentVersion() == nil)
        let first = try await migrator.run()
        #expect(first.applied == Migrations.all.map(\.version))
        #expect(first.current == Migrations.latestVersion)
        let present = try await pg.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'reach' ORDER BY 1").compactMap { $0[0] }
        #expect(Set(present) == Set(Self.tables))

        let columns = try await pg.query("""
            SELECT table_name || '.' || column_name FROM information_schema.columns WHERE table_schema = 'reach'
            """).compactMap { $0[0] }
        for column in ["recipients.attrs", "recipients.push_token", "recipients.timezone", "preferences.opted_out",
                       "segments.rule", "campaigns.spec", "campaigns.state", "campaigns.scheduled_at", "campaigns.targeted",
                       "campaigns.sent", "campaigns.skipped", "campaigns.failed", "campaigns.dead", "campaigns.checkpoint",
                       "deliveries.message_id", "deliveries.provider_ref", "deliveries.last_error", "deliveries.attempts",
                       "inbox.read_at", "dead_letters.replayed_at", "dead_letters.payload", "triggers.delay_seconds",
                       "triggers.quiet_hours", "triggers.enabled"] {
            #expect(columns.contains(column), "missing column \(column)")
        }

        let second = try await migrator.run()
        #expect(second.applied.isEmpty)
        #expect(try await migrator.currentVersion() == Migrations.latestVersion)
        // The schema enforces the contract's vocabularies.
        await #expect(throws: PostgresError.self) {
            try await pg.query("INSERT INTO reach.deliveries (campaign_id, user_id, status, message_id) VALUES ('c', 'u', 'lost', 'm')")
        }
    }

    @Test("two instances migrating at once apply each version exactly once")
    func concurrentRuns() async throws {
        let url = try await freshDatabase()
        let a = Migrator(client: PostgresClient(url: url, poolSize: 1))
        let b = Migrator(client: PostgresClient(url: url, poolSize: 1))
        async let first = a.run()
        async let second = b.run()
        let outcomes = try await [first, second]
        #expect(outcomes.flatMap(\.applied).sorted() == Migrations.all.map(\.version))
        let pg = PostgresClient(url: url, poolSize: 1)
        #expect(try await pg.query("SELECT count(*) FROM reach.schema_migrations").first?.int(0) == Migrations.all.count)
    }

    @Test("a failing migration rolls back whole and leaves the version unrecorded")
    func failedMigrationRollsBack() async throws {
        let url = try await freshDatabase()
        let pg = PostgresClient(url: url, poolSize: 1)
        let broken = Migrations.all + [Migration(version: 999, name: "broken", sql: "CREATE TABLE reach.half (id int); SELECT no_such_function();")]
        await #expect(throws: PostgresError.self) { try await Migrator(client: pg, migrations: broken).run() }
        #expect(try await pg.query("SELECT to_regclass('reach.half') IS NULL").first?.bool("?column?") == true)
        #expect(try await Migrator(client: pg).currentVersion() == Migrations.latestVersion)
    }

    @Test("a database migrated by a newer reachd is refused with a clear error")
    func newerSchemaRefused() async throws {
        let url = try await freshDatabase()
        let pg = PostgresClient(url: url, poolSize: 1)
        try await Migrator(client: pg).run()
        try await pg.query("INSERT INTO reach.schema_migrations (version, name) VALUES (9999, 'future')")
        await #expect {
            try await Migrator(client: pg).run()
        } throws: { error in
            "\(error)".contains("newer")
        }
    }
}
