import ReachPostgres

public enum TestDatabase {
    /// A new, empty database on the shared test server; returns its URL.
    /// `adminURL`: another server's admin URL (e.g. a `PostgresServerProcess`'s); default the shared one.
    public static func fresh(adminURL: String? = nil) async throws -> String {
        let base = try adminURL ?? TestEnvironment.postgresAdminURL()
        let admin = PostgresClient(url: base, poolSize: 1)
        let name = "t_" + TestEnvironment.unique("db").replacingOccurrences(of: "-", with: "_")
        try await admin.query("CREATE DATABASE \(name)")  // a name made here, not input
        return String(base[..<base.lastIndex(of: "/")!]) + "/" + name
    }

    /// A new database with schema `reach` migrated; returns its URL.
    public static func migrated(adminURL: String? = nil) async throws -> String {
        let url = try await fresh(adminURL: adminURL)
        try await Migrator(client: PostgresClient(url: url, poolSize: 1)).run()
        return url
    }
}
