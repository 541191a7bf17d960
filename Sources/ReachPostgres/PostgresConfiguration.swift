/// Where and how to reach PostgreSQL. `url` is any libpq connection string
/// (`postgresql://user@host:port/db`); it may hold a password, so it is never logged.
public struct PostgresConfiguration: Sendable {
    public var url: String
    public var poolSize: Int
    public var connectTimeout: Duration
    public var queryTimeout: Duration
    public var applicationName: String
    public var reconnectBase: Duration
    public var reconnectMax: Duration

    public init(url: String, poolSize: Int = 4, connectTimeout: Duration = .seconds(5), queryTimeout: Duration = .seconds(30), applicationName: String = "reachd") {
        self.url = url
        self.poolSize = poolSize
        self.connectTimeout = connectTimeout
        self.queryTimeout = queryTimeout
        self.applicationName = applicationName
        self.reconnectBase = .milliseconds(50)
        self.reconnectMax = .seconds(5)
    }
}
