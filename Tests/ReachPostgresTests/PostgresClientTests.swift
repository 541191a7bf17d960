import ReachPostgres
import Testing
import TestSupport

func freshDatabase() async throws -> String { try await TestDatabase.fresh() }

@Suite("PostgreSQL client against a real server")
struct PostgresClientTests {
    func client(poolSize: Int = 2) throws -> PostgresClient {
        PostgresClient(url: try TestEnvironment.postgresURL(), poolSize: poolSize)
    }

    @Test("parameters are bound, never spliced: hostile text round-trips literally")
    func hostileParameters() async throws {
        let pg = try client()
        let table = "t_" + TestEnvironment.unique("p").replacingOccurrences(of: "-", with: "_")
        try await pg.query("CREATE TABLE \(table) (id int, v text)")
        let hostile = ["'; DROP TABLE \(table); --", "a\"b\\c", "/* c */ OR 1=1", "名前 🎉 é", "tab\tnew\nline", ""]
        for (i, value) in hostile.enumerated() {
            try await pg.query("INSERT INTO \(table) VALUES ($1, $2)", [i, value])
        }
        let rows = try await pg.query("SELECT v FROM \(table) ORDER BY id")
        #expect(rows.map { $0[0] } == hostile.map { Optional($0) })
        let matched = try await pg.query("SELECT count(*) FROM \(table) WHERE v = $1", [hostile[0]])
        #expect(matched.first?.int(0) == 1)
        let nullRow = try await pg.query("SELECT $1::text AS n, $2::int AS i", [String?.none, 42])
        #expect(nullRow.first?["n"] == nil && nullRow.first?.int("i") == 42)
    }

    @Test("array parameters feed unnest batches")
    func arrayParameters() async throws {
        let pg = try client()
        let values = ["plain", "with,comma", "with\"quote", "back\\slash", "{brace}", "NULL"]
        let rows = try await pg.query("SELECT x FROM unnest($1::text[]) WITH ORDINALITY AS t(x, n) ORDER BY n", [values])
        #expect(rows.map { $0[0] } == values.map { Optional($0) })
        let withNull = try await pg.query("SELECT count(*) FILTER (WHERE x IS NULL) FROM unnest($1::text[]) x", [[String?]([ "a", nil ])])
        #expect(withNull.first?.int(0) == 1)
    }

    @Test("server errors carry their SQLSTATE and say whether a retry helps")
    func sqlState() async throws {
        let pg = try client()
        let table = "t_" + TestEnvironment.unique("u").replacingOccurrences(of: "-", with: "_")
        try await pg.query("CREATE TABLE \(table) (id int PRIMARY KEY)")
        try await pg.query("INSERT INTO \(table) VALUES (1)")
        await #expect {
            try await pg.query("INSERT INTO \(table) VALUES ($1)", [1])
        } throws: { error in
            guard let e = error as? PostgresError else { return false }
            return e.sqlState == "23505" && e.isUniqueViolation && !e.isRetryable
        }
        await #expect {
            try await pg.query("SELEC 1")
        } throws: { error in
            (error as? PostgresError)?.sqlState == "42601"
        }
        // The connection is still fine afterwards.
        #expect(try await pg.query("SELECT 1").first?.int(0) == 1)
    }

    @Test("a statement over its time limit is cancelled on the server and the connection stays usable")
    func queryTimeout() async throws {
        let pg = PostgresClient(configuration: PostgresConfiguration(url: try TestEnvironment.postgresURL(), poolSize: 1))
        // Connect first: the clock below measures the cancel, not a connection set up on a loaded machine.
        #expect(try await pg.query("SELECT 1").first?.int(0) == 1)
        let started = ContinuousClock.now
        await #expect {
            try await pg.withConnection { try await $0.query("SELECT pg_sleep(10)", timeout: .milliseconds(300)) }
        } throws: { error in
            (error as? PostgresError)?.code == .timeout
        }
        #expect(ContinuousClock.now - started < .seconds(8), "the 300 ms limit cut the 10 s sleep short")
        #expect(try await pg.query("SELECT 2").first?.int(0) == 2)
    }

    @Test("COPY in and COPY out move rows exactly, escapes and NULLs included")
    func copyRoundTrip() async throws {
        let pg = try client(poolSize: 1)
        let table = "t_" + TestEnvironment.unique("c").replacingOccurrences(of: "-", with: "_")
        try await pg.query("CREATE TABLE \(table) (id text PRIMARY KEY, a text, b text)")
        var rows: [[String?]] = (0..<20_000).map { i in ["u\(i)", "phone-\(i)", i % 7 == 0 ? nil : "x\(i)"] }
        rows.append(["weird", "tab\there\nnewline\\back", "\\N literal"])
        let copied = try await pg.withConnection { try await $0.copyIn("COPY \(table) (id, a, b) FROM STDIN", rows: rows) }
        #expect(copied == rows.count)
        #expect(try await pg.query("SELECT count(*) FROM \(table)").first?.int(0) == rows.count)
        #expect(try await pg.query("SELECT count(*) FROM \(table) WHERE b IS NULL").first?.int(0) == (0..<20_000).filter { $0 % 7 == 0 }.count)

        let back: [[String?]] = try await pg.withConnection { conn in
            try await conn.startCopyOut("COPY (SELECT id, a, b FROM \(table) ORDER BY id) TO STDOUT")
            var all: [[String?]] = []
            while let page = try await conn.readCopyRows(max: 1000) {
                #expect(page.count <= 1000)
                all += page
            }
            return all
        }
        #expect(back.count == rows.count)
        let expected = rows.sorted { $0[0]! < $1[0]! }
        #expect(back.map { $0.map { $0 ?? "<null>" } } == expected.map { $0.map { $0 ?? "<null>" } })
    }

    @Test("a terminated session is noticed and replaced by a new connection")
    func terminatedBackend() async throws {
        let pg = PostgresClient(configuration: PostgresConfiguration(url: try TestEnvironment.postgresURL(), poolSize: 1))
        let admin = PostgresClient(url: try TestEnvironment.postgresAdminURL(), poolSize: 1)
        let pid = try await pg.withConnection { try await $0.backendPID() }
        try await admin.query("SELECT pg_terminate_backend($1)", [Int(pid)])
        try await Task.sleep(for: .milliseconds(200))
        #expect(try await pg.query("SELECT 3").first?.int(0) == 3, "the idle broken connection is replaced before use")
        let newPID = try await pg.withConnection { try await $0.backendPID() }
        #expect(newPID != pid)
    }

    @Test("the client reconnects after the server restarts")
    func reconnectAfterRestart() async throws {
        let server = try await PostgresServerProcess.start()
        var configuration = PostgresConfiguration(url: server.url, poolSize: 2)
        configuration.reconnectMax = .milliseconds(500)
        let pg = PostgresClient(configuration: configuration)
        try await pg.query("CREATE TABLE kept (v int)")
        try await pg.query("INSERT INTO kept VALUES (1)")
        try await server.stop()
        await #expect {
            try await pg.query("SELECT 1")
        } throws: { error in
            (error as? PostgresError)?.isRetryable == true
        }
        try await server.start()
        #expect(try await eventually(timeout: .seconds(15), every: .milliseconds(100)) {
            try await pg.query("SELECT count(*) FROM kept").first?.int(0) == 1
        })
        try await server.restart()
        #expect(try await eventually(timeout: .seconds(15), every: .milliseconds(100)) {
            try await pg.query("INSERT INTO kept VALUES (2)").affected == 1
        })
        #expect(try await pg.query("SELECT count(*) FROM kept").first?.int(0) == 2)
    }

    @Test("a connection error never shows the password")
    func connectionErrorHidesPassword() async throws {
        let port = try TestEnvironment.freePort()
        let pg = PostgresClient(url: "postgresql://reach:hunter2@127.0.0.1:\(port)/reach", poolSize: 1)
        await #expect {
            try await pg.ping()
        } throws: { error in
            (error as? PostgresError)?.code == .connection && !"\(error)".contains("hunter2")
        }
    }
}

@Suite struct CopyTextTests {
    @Test func encodeDecodeRoundTrip() {
        let row: [String?] = ["a\tb", nil, "c\\d\ne\r", "", "\\N"]
        var bytes: [UInt8] = []
        CopyText.encode(row, into: &bytes)
        #expect(String(decoding: bytes, as: UTF8.self) == "a\\tb\t\\N\tc\\\\d\\ne\\r\t\t\\\\N\n")
        let decoded = bytes.withUnsafeBytes { CopyText.decode($0) }
        #expect(decoded == row)
    }
}
