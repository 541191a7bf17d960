import ReachSupport
import Synchronization

/// A Lua script run with EVALSHA; loaded on first use and again after the
/// server forgot it (NOSCRIPT, e.g. after a restart).
public struct RedisScript: Sendable, Hashable {
    public let source: String
    public init(_ source: String) { self.source = source }
}

/// A pool of `RedisConnection`s with script caching. Each call leases one
/// connection, so a pipeline or script call is never interleaved with another.
///
/// With a `redis+cluster://` configuration the same calls are routed over a
/// Redis Cluster instead (see `RedisCluster`): a pool per master, commands
/// sent by key slot, a pipeline split per node and put back in order.
public final class RedisClient: Sendable {
    public let configuration: RedisConfiguration
    private let pool: LeasePool<RedisConnection>?
    private let cluster: RedisCluster?
    private let scriptHashes = Mutex<[String: String]>([:])

    public init(configuration: RedisConfiguration) {
        self.configuration = configuration
        if configuration.isCluster {
            self.pool = nil
            self.cluster = RedisCluster(configuration: configuration)
        } else {
            self.pool = LeasePool((0..<max(1, configuration.poolSize)).map { i in
                RedisConnection(configuration: configuration, name: "reach.redis.\(i)")
            })
            self.cluster = nil
        }
    }

    /// What the cluster client has followed and retried; nil for a single server.
    public var clusterStatistics: RedisClusterStatistics? { cluster?.statistics }

    public convenience init(url: String, poolSize: Int = 4) throws {
        self.init(configuration: try RedisConfiguration(url: url, poolSize: poolSize))
    }

    private var leaseTimeout: Duration { configuration.commandTimeout + configuration.connectTimeout }

    @discardableResult
    public func send(_ command: RedisCommand) async throws -> RedisValue {
        if let cluster { return try await cluster.send(command) }
        return try await pool!.withResource(timeout: leaseTimeout) { try await $0.send(command) }
    }

    @discardableResult
    public func send(_ name: String, _ arguments: RedisArgument...) async throws -> RedisValue {
        try await send(RedisCommand(name, arguments))
    }

    /// One round trip for all commands; error replies come back as `.error` in place.
    /// In a cluster the commands go to their slots' nodes (concurrently, one
    /// pipeline each); the replies still come back in the order of `commands`.
    public func pipeline(_ commands: [RedisCommand]) async throws -> [RedisValue] {
        if let cluster { return try await cluster.pipeline(commands) }
        return try await pool!.withResource(timeout: leaseTimeout) { try await $0.pipeline(commands) }
    }

    /// For a cluster: the slot map covers every slot and every master answers.
    public func ping() async throws {
        if let cluster { return try await cluster.ping() }
        let reply = try await send("PING")
        guard reply.string == "PONG" else { throw RedisError(.unexpectedReply, "PING answered \(reply)") }
    }

    /// Runs a script once; an error raised by the script is thrown as `.server`.
    @discardableResult
    public func run(_ script: RedisScript, keys: [String], arguments: [RedisArgument] = []) async throws -> RedisValue {
        let reply = try await run(script, calls: [(keys, arguments)])[0]
        if case .error(let message) = reply { throw RedisError(.server, message) }
        return reply
    }

    /// Runs a script once per call, all in one pipeline (one round trip, plus
    /// one more if the server had to load the script first).
    public func run(_ script: RedisScript, calls: [(keys: [String], arguments: [RedisArgument])]) async throws -> [RedisValue] {
        guard !calls.isEmpty else { return [] }
        if let cluster { return try await cluster.run(script, calls: calls) }
        return try await pool!.withResource(timeout: leaseTimeout) { connection in
            var sha = try await self.hash(of: script, on: connection)
            func commands(_ indices: [Int]) -> [RedisCommand] {
                indices.map { i in
                    let (keys, arguments) = calls[i]
                    return RedisCommand("EVALSHA", [sha, keys.count] + keys + arguments)
                }
            }
            var replies = try await connection.pipeline(commands(Array(calls.indices)))
            let missing = replies.indices.filter { replies[$0].errorMessage?.hasPrefix("NOSCRIPT") == true }
            if !missing.isEmpty {
                sha = try await self.load(script, on: connection)
                let retried = try await connection.pipeline(commands(missing))
                for (i, reply) in zip(missing, retried) { replies[i] = reply }
            }
            return replies
        }
    }

    private func hash(of script: RedisScript, on connection: RedisConnection) async throws -> String {
        if let known = scriptHashes.withLock({ $0[script.source] }) { return known }
        return try await load(script, on: connection)
    }

    private func load(_ script: RedisScript, on connection: RedisConnection) async throws -> String {
        let reply = try await connection.send(RedisCommand("SCRIPT", "LOAD", script.source))
        guard let sha = reply.string else { throw RedisError(.unexpectedReply, "SCRIPT LOAD answered \(reply)") }
        scriptHashes.withLock { $0[script.source] = sha }
        return sha
    }
}
