import ReachRedis
import Testing
import TestSupport

@Suite("Redis client against a real redis-server")
struct RedisClientTests {
    func client(poolSize: Int = 2) throws -> RedisClient {
        try RedisClient(url: try TestEnvironment.redisURL(), poolSize: poolSize)
    }

    @Test func commandsAndBinarySafeValues() async throws {
        let redis = try client()
        let key = TestEnvironment.unique("t:bin")
        let value: [UInt8] = [0, 1, 2, 0xFF, 0x0D, 0x0A, 0x20]
        #expect(try await redis.send("SET", key, value, "PX", 60_000).string == "OK")
        #expect(try await redis.send("GET", key) == .string(value))
        #expect(try await redis.send("GET", TestEnvironment.unique("t:missing")) == .null)
        #expect(try await redis.send("SET", key, "x", "NX").isNull, "SET NX on an existing key is a null reply")
    }

    @Test("a pipeline of 1000 commands is one call and keeps reply order")
    func pipelineOrder() async throws {
        let redis = try client()
        let key = TestEnvironment.unique("t:pipe")
        let replies = try await redis.pipeline((0..<1000).map { _ in RedisCommand("INCR", key) } + [RedisCommand("DEL", key)])
        #expect(replies.prefix(1000).map(\.int) == (1...1000).map { Int64($0) })
        #expect(replies.last == .integer(1))
    }

    @Test("an error reply is a non-retryable server error; in a pipeline it stays in place")
    func errorReplies() async throws {
        let redis = try client()
        let key = TestEnvironment.unique("t:err")
        try await redis.send("SET", key, "text")
        await #expect {
            try await redis.send("INCR", key)
        } throws: { error in
            guard let e = error as? RedisError else { return false }
            return e.code == .server && !e.isRetryable && e.message.contains("not an integer")
        }
        let replies = try await redis.pipeline([RedisCommand("INCR", key), RedisCommand("GET", key)])
        #expect(replies[0].errorMessage != nil)
        #expect(replies[1].string == "text")
    }

    @Test("scripts run by EVALSHA and are loaded again after SCRIPT FLUSH")
    func scriptsSurviveFlush() async throws {
        let redis = try client(poolSize: 1)
        let script = RedisScript("return redis.call('INCRBY', KEYS[1], ARGV[1])")
        let key = TestEnvironment.unique("t:lua")
        #expect(try await redis.run(script, keys: [key], arguments: [5]) == .integer(5))
        try await redis.send("SCRIPT", "FLUSH")
        #expect(try await redis.run(script, keys: [key], arguments: [2]) == .integer(7))
        let batch = try await redis.run(script, calls: (0..<100).map { _ in ([key], [1]) })
        #expect(batch.last == .integer(107))
        #expect(batch.count == 100)
    }

    @Test("a command slower than the timeout fails as a retryable timeout; the next call works")
    func commandTimeout() async throws {
        var configuration = try RedisConfiguration(url: try TestEnvironment.redisURL(), poolSize: 1)
        configuration.commandTimeout = .milliseconds(300)
        configuration.reconnectBase = .milliseconds(1)
        configuration.reconnectMax = .milliseconds(2)
        let redis = RedisClient(configuration: configuration)
        let started = ContinuousClock.now
        await #expect {
            try await redis.send("BLPOP", TestEnvironment.unique("t:empty"), "20")
        } throws: { error in
            (error as? RedisError)?.code == .timeout && (error as? RedisError)?.isRetryable == true
        }
        // Generous: on a loaded 2-core machine resuming this test can take a while.
        #expect(ContinuousClock.now - started < .seconds(12), "the 300 ms limit cut the 20 s block short")
        // The timed-out connection was dropped; the next call works once its (1 ms) reconnect backoff has passed.
        #expect(try await eventually(timeout: .seconds(5)) { (try? await redis.ping()) != nil })
    }

    @Test("the client reconnects with backoff after the server restarts mid-test")
    func reconnectAfterRestart() async throws {
        let server = try await RedisServerProcess.start()
        let redis = try RedisClient(url: server.url, poolSize: 2)
        try await redis.send("SET", "before", "1")
        try await server.stop()

        await #expect {
            try await redis.send("SET", "during", "1")
        } throws: { error in
            (error as? RedisError)?.isRetryable == true
        }
        try await server.start()
        // The restarted server is empty; writes succeed again once the backoff allows a reconnect.
        let recovered = try await eventually(timeout: .seconds(15), every: .milliseconds(100)) {
            try await redis.send("SET", "after", "1")
            return true
        }
        #expect(recovered)
        #expect(try await redis.send("GET", "after").string == "1")
        #expect(try await redis.send("EXISTS", "before") == .integer(0), "a restart without persistence starts empty")
        // Every pooled connection recovers, not just one.
        for _ in 0..<10 { try await redis.ping() }
    }

    @Test("connection refused is a retryable connection error naming the address, never a password")
    func refused() async throws {
        let port = try TestEnvironment.freePort()
        let redis = try RedisClient(url: "redis://:hunter2@127.0.0.1:\(port)/0", poolSize: 1)
        await #expect {
            try await redis.ping()
        } throws: { error in
            let text = "\(error)"
            return (error as? RedisError)?.isRetryable == true && text.contains("\(port)") && !text.contains("hunter2")
        }
    }

    @Test func urlParsing() throws {
        let c = try RedisConfiguration(url: "redis://:p%40ss@10.0.0.5:6380/3")
        #expect(c.host == "10.0.0.5" && c.port == 6380 && c.database == 3 && c.password == "p@ss")
        let d = try RedisConfiguration(url: "redis://localhost")
        #expect(d.host == "localhost" && d.port == 6379 && d.database == 0 && d.password == nil)
        #expect(throws: RedisError.self) { try RedisConfiguration(url: "http://x") }
        #expect(throws: RedisError.self) { try RedisConfiguration(url: "redis://h:99999/0") }
        #expect(throws: RedisError.self) { try RedisConfiguration(url: "redis://h:1/x") }
    }
}
