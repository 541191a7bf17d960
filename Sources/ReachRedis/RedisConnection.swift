import CHiredis
import ReachCore
import ReachSupport
#if canImport(Glibc)
import Glibc
#endif

/// One hiredis connection, owned by an actor that runs on its own thread.
///
/// Every call is bounded by the command timeout. A broken connection is dropped
/// and re-opened on a later call, with exponential backoff between failed
/// attempts; calls made while waiting out the backoff fail at once with a
/// retryable `unavailable` error instead of piling up.
public actor RedisConnection {
    private nonisolated let executor: BlockingExecutor
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    public nonisolated let configuration: RedisConfiguration
    private var context: UnsafeMutablePointer<redisContext>?
    private var reconnect: ReconnectSchedule

    public init(configuration: RedisConfiguration, name: String = "reach.redis") {
        self.configuration = configuration
        self.executor = BlockingExecutor(label: name)
        self.reconnect = ReconnectSchedule(base: configuration.reconnectBase, max: configuration.reconnectMax)
    }

    isolated deinit {
        if let context { redisFree(context) }
    }

    public var isConnected: Bool { context != nil }

    /// Sends one command; an error reply is thrown as `RedisError(.server)`.
    @discardableResult
    public func send(_ command: RedisCommand) throws -> RedisValue {
        let reply = try pipeline([command])[0]
        if case .error(let message) = reply { throw RedisError(.server, message) }
        return reply
    }

    /// Writes every command, then reads every reply: one round trip.
    /// Error replies are returned in place, as `.error`.
    public func pipeline(_ commands: [RedisCommand]) throws -> [RedisValue] {
        guard !commands.isEmpty else { return [] }
        let ctx: UnsafeMutablePointer<redisContext>
        do {
            ctx = try connectedContext()
        } catch var error as RedisError {
            error.unsent = true  // nothing was written
            throw error
        }
        for command in commands {
            if append(ctx, command) != REDIS_OK { throw drop(ctx, during: command.name) }
        }
        var replies: [RedisValue] = []
        replies.reserveCapacity(commands.count)
        for command in commands {
            var raw: UnsafeMutableRawPointer?
            if redisGetReply(ctx, &raw) != REDIS_OK || raw == nil {
                throw drop(ctx, during: command.name)
            }
            let reply = raw!.assumingMemoryBound(to: redisReply.self)
            replies.append(Self.copy(reply))
            freeReplyObject(raw)
        }
        reconnect.succeeded()
        return replies
    }

    /// Closes the connection; the next call opens a new one.
    public func disconnect() {
        if let context { redisFree(context) }
        context = nil
    }

    // MARK: - Connection management

    private func connectedContext() throws -> UnsafeMutablePointer<redisContext> {
        if let context {
            if Self.peerClosed(context) {
                disconnect()
            } else {
                return context
            }
        }
        guard reconnect.mayAttempt else {
            throw RedisError(.unavailable, "reconnecting to \(configuration.host):\(configuration.port) after \(reconnect.consecutiveFailures) failure(s)")
        }
        do {
            let ctx = try open()
            context = ctx
            return ctx
        } catch {
            reconnect.failed()
            throw error
        }
    }

    private func open() throws -> UnsafeMutablePointer<redisContext> {
        guard let ctx = redisConnectWithTimeout(configuration.host, Int32(configuration.port), Self.timeval(configuration.connectTimeout)) else {
            throw RedisError(.connection, "out of memory creating a connection")
        }
        if ctx.pointee.err != 0 {
            let message = Self.errorString(ctx)
            redisFree(ctx)
            throw RedisError(.connection, "connect to \(configuration.host):\(configuration.port): \(message)")
        }
        _ = redisSetTimeout(ctx, Self.timeval(configuration.commandTimeout))
        _ = redisEnableKeepAlive(ctx)
        context = ctx
        var setup: [RedisCommand] = []
        if let password = configuration.password { setup.append(RedisCommand("AUTH", password)) }
        if configuration.database != 0 { setup.append(RedisCommand("SELECT", configuration.database)) }
        for command in setup {
            var raw: UnsafeMutableRawPointer?
            guard append(ctx, command) == REDIS_OK, redisGetReply(ctx, &raw) == REDIS_OK, let raw else {
                context = nil
                redisFree(ctx)
                throw RedisError(.connection, "\(command.name) failed during connect")
            }
            let reply = Self.copy(raw.assumingMemoryBound(to: redisReply.self))
            freeReplyObject(raw)
            if case .error(let message) = reply {
                context = nil
                redisFree(ctx)
                // Never echo the AUTH argument.
                throw RedisError(.connection, "\(command.name) rejected: \(message)")
            }
        }
        return ctx
    }

    /// Frees a broken context and returns the error to throw.
    private func drop(_ ctx: UnsafeMutablePointer<redisContext>, during commandName: String) -> RedisError {
        let savedErrno = errno
        let err = ctx.pointee.err
        let message = Self.errorString(ctx)
        disconnect()
        reconnect.failed()
        if err == REDIS_ERR_IO && (savedErrno == EAGAIN || savedErrno == EWOULDBLOCK) {
            return RedisError(.timeout, "\(commandName) got no reply within \(configuration.commandTimeout)")
        }
        return RedisError(.connection, "\(commandName): \(message.isEmpty ? "connection lost" : message)")
    }

    private func append(_ ctx: UnsafeMutablePointer<redisContext>, _ command: RedisCommand) -> Int32 {
        var lengths = command.lengths
        // Never empty: the command's name is in it.
        return command.bytes.withUnsafeBufferPointer { buffer in
            let base = UnsafeRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self)
            var pointers: [UnsafePointer<CChar>?] = []
            pointers.reserveCapacity(lengths.count)
            var offset = 0
            for length in lengths {
                pointers.append(base + offset)
                offset += length
            }
            return pointers.withUnsafeMutableBufferPointer { argv in
                redisAppendCommandArgv(ctx, Int32(lengths.count), argv.baseAddress, &lengths)
            }
        }
    }

    /// True when the server closed an idle connection (it restarted, or timed us
    /// out): the socket is readable while no reply is expected.
    private static func peerClosed(_ ctx: UnsafeMutablePointer<redisContext>) -> Bool {
        var descriptor = pollfd(fd: ctx.pointee.fd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&descriptor, 1, 0)
        return ready != 0
    }

    private static func copy(_ reply: UnsafeMutablePointer<redisReply>) -> RedisValue {
        let r = reply.pointee
        switch r.type {
        case REDIS_REPLY_STRING:
            return .string(r.str.map { Array(UnsafeRawBufferPointer(start: $0, count: Int(r.len))) } ?? [])
        case REDIS_REPLY_STATUS:
            return .status(r.str.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: Int(r.len)), as: UTF8.self) } ?? "")
        case REDIS_REPLY_ERROR:
            return .error(r.str.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: Int(r.len)), as: UTF8.self) } ?? "")
        case REDIS_REPLY_INTEGER:
            return .integer(r.integer)
        case REDIS_REPLY_ARRAY:
            return .array((0..<Int(r.elements)).map { copy(r.element[$0]!) })
        default:
            return .null
        }
    }

    private static func errorString(_ ctx: UnsafeMutablePointer<redisContext>) -> String {
        withUnsafeBytes(of: ctx.pointee.errstr) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
    }

    private static func timeval(_ duration: Duration) -> Glibc.timeval {
        let micros = duration.nanoseconds / 1000
        return Glibc.timeval(tv_sec: Int(micros / 1_000_000), tv_usec: Int(micros % 1_000_000))
    }
}
