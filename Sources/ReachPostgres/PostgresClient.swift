import ReachSupport

/// A pool of `PostgresConnection`s. Single statements lease a connection for
/// their own length; `withConnection` and `withTransaction` keep one for a block.
public final class PostgresClient: Sendable {
    public let configuration: PostgresConfiguration
    private let pool: LeasePool<PostgresConnection>

    public init(configuration: PostgresConfiguration) {
        self.configuration = configuration
        self.pool = LeasePool((0..<max(1, configuration.poolSize)).map { i in
            PostgresConnection(configuration: configuration, name: "reach.postgres.\(i)")
        })
    }

    public convenience init(url: String, poolSize: Int = 4) {
        self.init(configuration: PostgresConfiguration(url: url, poolSize: poolSize))
    }

    private var leaseTimeout: Duration { configuration.queryTimeout + configuration.connectTimeout }

    @discardableResult
    public func query(_ sql: String, _ parameters: [any PostgresBindable] = []) async throws -> PostgresRows {
        try await withConnection { try await $0.query(sql, parameters) }
    }

    public func withConnection<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await pool.withResource(timeout: leaseTimeout, body)
    }

    /// Runs `body` inside BEGIN … COMMIT; any error rolls back and is rethrown.
    public func withTransaction<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await withConnection { connection in
            try await connection.query("BEGIN")
            do {
                let result = try await body(connection)
                try await connection.query("COMMIT")
                return result
            } catch {
                _ = try? await connection.query("ROLLBACK")
                throw error
            }
        }
    }

    public func ping() async throws {
        try await query("SELECT 1")
    }
}
