import Logging

/// Creates or upgrades schema `reach` to `Migrations.latestVersion`.
///
/// Safe to run from several instances at once: the work happens under a
/// session advisory lock, each version in its own transaction, and versions
/// already recorded in `reach.schema_migrations` are skipped.
public struct Migrator: Sendable {
    /// `pg_advisory_lock` key: "reach" in ASCII.
    public static let lockKey: Int64 = 0x7265_6163_68
    public let client: PostgresClient
    public let migrations: [Migration]
    public let logger: Logger

    public init(client: PostgresClient, migrations: [Migration] = Migrations.all, logger: Logger = Logger(label: "reach.migrate")) {
        self.client = client
        self.migrations = migrations.sorted { $0.version < $1.version }
        self.logger = logger
    }

    public struct Outcome: Sendable, Equatable {
        public var applied: [Int]
        public var current: Int
    }

    @discardableResult
    public func run() async throws -> Outcome {
        let migrations = self.migrations
        let logger = self.logger
        return try await client.withConnection { conn in
            try await conn.query("SELECT pg_advisory_lock($1)", [Self.lockKey], timeout: .seconds(120))
            do {
                let outcome = try await Self.migrate(conn, migrations, logger)
                try await conn.query("SELECT pg_advisory_unlock($1)", [Self.lockKey])
                return outcome
            } catch {
                _ = try? await conn.query("SELECT pg_advisory_unlock($1)", [Self.lockKey])
                throw error
            }
        }
    }

    public struct NotMigrated: Error, CustomStringConvertible {
        public let found: Int?
        public let needed: Int
        public var description: String {
            "schema reach is at version \(found.map(String.init) ?? "none"), this reachd needs \(needed): run `reachd migrate`"
        }
    }

    /// Throws `NotMigrated` unless the schema is at the version this build expects.
    public func ensureCurrent() async throws {
        let found = try await currentVersion()
        let needed = migrations.last?.version ?? 0
        guard found == needed else { throw NotMigrated(found: found, needed: needed) }
    }

    /// The highest applied version, or nil when the schema was never migrated.
    public func currentVersion() async throws -> Int? {
        let exists = try await client.query("SELECT to_regclass('reach.schema_migrations') IS NOT NULL AS present")
        guard exists.first?.bool("present") == true else { return nil }
        return try await client.query("SELECT max(version) AS v FROM reach.schema_migrations").first?.int("v")
    }

    private static func migrate(_ conn: PostgresConnection, _ migrations: [Migration], _ logger: Logger) async throws -> Outcome {
        try await conn.script("""
            CREATE SCHEMA IF NOT EXISTS reach;
            CREATE TABLE IF NOT EXISTS reach.schema_migrations (
                version    integer PRIMARY KEY,
                name       text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            );
            """)
        let done = Set(try await conn.query("SELECT version FROM reach.schema_migrations").compactMap { $0.int(0) })
        let latest = migrations.last?.version ?? 0
        if let newest = done.max(), newest > latest {
            throw PostgresError(.configuration, "the database schema is at version \(newest), newer than this reachd knows (\(latest)); upgrade reachd")
        }
        var applied: [Int] = []
        for migration in migrations where !done.contains(migration.version) {
            logger.info("applying migration", metadata: ["version": "\(migration.version)", "name": "\(migration.name)"])
            try await conn.query("BEGIN")
            do {
                try await conn.script(migration.sql, timeout: .seconds(600))
                try await conn.query("INSERT INTO reach.schema_migrations (version, name) VALUES ($1, $2)", [migration.version, migration.name])
                try await conn.query("COMMIT")
            } catch {
                _ = try? await conn.query("ROLLBACK")
                throw error
            }
            applied.append(migration.version)
        }
        return Outcome(applied: applied, current: max(latest, done.max() ?? 0))
    }
}
