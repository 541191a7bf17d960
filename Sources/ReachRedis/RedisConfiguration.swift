/// One Redis server's address.
public struct RedisEndpoint: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public var description: String { "\(host):\(port)" }
}

/// Where and how to reach Redis. Built from a URL:
/// - `redis://[:password@]host[:port][/db][?password=…]`: one server (the default);
/// - `redis+cluster://[:password@]host1:port1[,host2:port2,…][?password=…]`: a
///   Redis Cluster, through any of these seed nodes (a cluster has only database 0).
public struct RedisConfiguration: Sendable {
    public var host: String
    public var port: Int
    public var database: Int
    public var password: String?
    public var connectTimeout: Duration
    public var commandTimeout: Duration
    /// Connections per server (in a cluster: per master node).
    public var poolSize: Int
    /// Delays between reconnect attempts after a failure.
    public var reconnectBase: Duration
    public var reconnectMax: Duration
    /// True for a `redis+cluster://` URL: commands are routed by key slot.
    public var isCluster: Bool
    /// The nodes the client first asks for the cluster's slot map (for a
    /// single server: that server).
    public var seeds: [RedisEndpoint]
    /// How many MOVED/ASK redirections one command may follow.
    public var maxRedirects: Int

    public init(url: String, poolSize: Int = 4, connectTimeout: Duration = .seconds(2), commandTimeout: Duration = .seconds(5)) throws {
        let clusterScheme = "redis+cluster://"
        let isCluster = url.hasPrefix(clusterScheme)
        guard isCluster || url.hasPrefix("redis://") else {
            throw RedisError(.configuration, "the URL must start with redis:// (or redis+cluster:// for a Redis Cluster)")
        }
        var rest = Substring(url.dropFirst(isCluster ? clusterScheme.count : "redis://".count))
        var password: String?
        // `?password=…` (as other Redis clients accept it); other parameters are ignored.
        // Split off first, so no error below can quote it.
        // (A password in the user info may itself hold a '?': look only after its '@'.)
        let hostStart = rest.lastIndex(of: "@").map { rest.index(after: $0) } ?? rest.startIndex
        if let question = rest[hostStart...].firstIndex(of: "?") {
            for pair in rest[rest.index(after: question)...].split(separator: "&") where pair.hasPrefix("password=") {
                password = String(pair.dropFirst("password=".count)).removingPercentEncodingLite
            }
            rest = rest[..<question]
        }
        if let at = rest.lastIndex(of: "@") {
            let userInfo = rest[..<at]
            if let colon = userInfo.firstIndex(of: ":") {
                password = String(userInfo[userInfo.index(after: colon)...]).removingPercentEncodingLite
            } else if !userInfo.isEmpty {
                password = String(userInfo).removingPercentEncodingLite
            }
            rest = rest[rest.index(after: at)...]
        }
        var database = 0
        if let slash = rest.firstIndex(of: "/") {
            let db = rest[rest.index(after: slash)...]
            if !db.isEmpty {
                guard let n = Int(db), n >= 0 else { throw RedisError(.configuration, "database must be a number, got '\(db)'") }
                database = n
            }
            rest = rest[..<slash]
        }
        if isCluster && database != 0 {
            throw RedisError(.configuration, "a Redis Cluster has only database 0; drop '/\(database)' from the redis+cluster:// URL")
        }
        let seeds: [RedisEndpoint]
        if isCluster {
            let parts = rest.split(separator: ",", omittingEmptySubsequences: false)
            guard !parts.isEmpty, parts.allSatisfy({ !$0.isEmpty }) else {
                throw RedisError(.configuration, "redis+cluster:// needs one or more seed nodes, host:port separated by commas")
            }
            seeds = try parts.map(Self.endpoint)
        } else {
            seeds = [try Self.endpoint(rest)]
        }
        self.host = seeds[0].host
        self.port = seeds[0].port
        self.isCluster = isCluster
        self.seeds = seeds
        self.maxRedirects = 5
        self.database = database
        self.password = password
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        self.poolSize = poolSize
        self.reconnectBase = .milliseconds(50)
        self.reconnectMax = .seconds(5)
    }

    /// `host[:port]`; an empty host is 127.0.0.1, a missing port 6379.
    private static func endpoint(_ text: Substring) throws -> RedisEndpoint {
        var host = String(text)
        var port = 6379
        if let colon = text.lastIndex(of: ":") {
            host = String(text[..<colon])
            guard let p = Int(text[text.index(after: colon)...]), (1...65535).contains(p) else {
                throw RedisError(.configuration, "port must be 1-65535")
            }
            port = p
        }
        if host.isEmpty { host = "127.0.0.1" }
        return RedisEndpoint(host: host, port: port)
    }

    /// The settings for one node of a cluster (timeouts, password and pool
    /// size as configured; database 0).
    func node(_ endpoint: RedisEndpoint) -> RedisConfiguration {
        var copy = self
        copy.host = endpoint.host
        copy.port = endpoint.port
        copy.database = 0
        copy.isCluster = false
        copy.seeds = [endpoint]
        return copy
    }
}

extension String {
    /// Decodes `%XX` escapes (enough for passwords in URLs) without Foundation.
    var removingPercentEncodingLite: String {
        var bytes: [UInt8] = []
        var iterator = Array(utf8)[...]
        while let byte = iterator.popFirst() {
            if byte == UInt8(ascii: "%"), iterator.count >= 2,
               let value = UInt8(String(decoding: iterator.prefix(2), as: UTF8.self), radix: 16) {
                bytes.append(value)
                iterator = iterator.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
