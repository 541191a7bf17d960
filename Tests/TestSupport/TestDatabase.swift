import ReachPostgres

public enum TestDatabase {
    /// A new, empty database on the shared test server; returns its URL.
    public static func fresh() async throws -> String {
        let admin = PostgresClient(url: try TestEnvironment.postgresAdminURL(), poolSize: 1)
        let name = "t_" + TestEnvironment.unique("db").replacingOccurrences(of: "-", with: "_")
        try await admin.query("CREATE DATABASE \(name)")  // a name made here, not input
        let base = try TestEnvironment.postgresAdminURL()
        return String(base[..<base.lastIndex(of: "/")!]) + "/" + name
    }

    /// A new database with schema `reach` migrated; returns its URL.
    public static func migrated() async throws -> String {
        let url = try await fresh()
        try await Migrator(client: PostgresClient(url: url, poolSize: 1)).run()
        return url
    }
}
