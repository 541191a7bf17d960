/// Where and how to reach Redis. Built from a `redis://[:password@]host[:port][/db][?password=…]` URL.
public struct RedisConfiguration: Sendable {
    public var host: String
    public var port: Int
    public var database: Int
    public var password: String?
    public var connectTimeout: Duration
    public var commandTimeout: Duration
    public var poolSize: Int
    /// Delays between reconnect attempts after a failure.
    public var reconnectBase: Duration
    public var reconnectMax: Duration

    public init(url: String, poolSize: Int = 4, connectTimeout: Duration = .seconds(2), commandTimeout: Duration = .seconds(5)) throws {
        guard url.hasPrefix("redis://") else {
            throw RedisError(.configuration, "the URL must start with redis://")
        }
        var rest = Substring(url.dropFirst("redis://".count))
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
        var host = String(rest)
        var port = 6379
        if let colon = rest.lastIndex(of: ":") {
            host = String(rest[..<colon])
            guard let p = Int(rest[rest.index(after: colon)...]), (1...65535).contains(p) else {
                throw RedisError(.configuration, "port must be 1-65535")
            }
            port = p
        }
        if host.isEmpty { host = "127.0.0.1" }
        self.host = host
        self.port = port
        self.database = database
        self.password = password
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        self.poolSize = poolSize
        self.reconnectBase = .milliseconds(50)
        self.reconnectMax = .seconds(5)
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
