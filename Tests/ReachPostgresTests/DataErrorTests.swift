import ReachPostgres
import Testing
import TestSupport

@Suite("data errors and input dead letters against a real server")
struct DataErrorTests {
    @Test("what PostgreSQL refuses for a message's own content is a data error (dead letter); infrastructure errors are not")
    func classification() async throws {
        let pg = PostgresClient(url: try TestEnvironment.postgresURL(), poolSize: 1)
        for (sql, state) in [
            (#"SELECT '1e-20000'::numeric"#, "22003"),
            (#"SELECT '{"a":"\u0000"}'::jsonb"#, "22P05"),
            (#"SELECT '0000-12-31T10:00:00Z'::timestamptz"#, "22008"),
        ] {
            do {
                try await pg.query(sql)
                Issue.record("\(sql) was accepted")
            } catch let error as PostgresError {
                #expect(error.sqlState == state, "\(sql): \(error)")
                #expect(error.isDataError && !error.isRetryable, "\(error)")
            }
        }
        #expect(PostgresError(.server, "x", sqlState: "54000").isDataError)
        for infrastructure in [PostgresError(.connection, "gone"), PostgresError(.timeout, "slow"), PostgresError(.server, "x", sqlState: "08006"),
                               PostgresError(.server, "x", sqlState: "40001"), PostgresError(.server, "x", sqlState: "57P01"),
                               PostgresError(.server, "x", sqlState: "23505")] {
            #expect(!infrastructure.isDataError, "\(infrastructure)")
        }
    }

    @Test("an input dead letter keeps the exact bytes in raw (migration 5), bound as bytea hex text")
    func rawBytes() async throws {
        let url = try await TestDatabase.migrated()
        let pg = PostgresClient(url: url, poolSize: 1)
        let bytes: [UInt8] = [0x7B, 0x00, 0xFF, 0x5C, 0x22, 0x0A, 0xC3]
        let id = try await DeadLetterStore(client: pg).recordInput(topic: "t", partition: 0, offset: 7, reason: "unparseable", error: "e",
                                                                  payloadJSON: #""{\ufffd""#, raw: bytes)
        let row = try await pg.query("SELECT encode(raw, 'hex'), payload #>> '{}' FROM reach.dead_letters WHERE id = $1", [id]).first
        #expect(row?[0] == "7b00ff5c220ac3")
        #expect(row?[1] == "{\u{FFFD}")
        #expect(DeadLetterStore.byteaHex([0x00, 0xAB]) == "\\x00ab")
        // Migration 5 is applied (later versions may follow it).
        #expect(try await pg.query("SELECT count(*) FROM reach.schema_migrations WHERE version = 5").first?.int(0) == 1)
    }
}
