import Foundation
import ReachRedis
import Testing
import TestSupport

@Suite("the cluster-wide channel switch in Redis")
struct ChannelSwitchesTests {
    @Test("pause and resume say whether they changed anything; paused() lists channels with the time of the first pause; one hash <prefix>channels:paused")
    func pauseAndResume() async throws {
        let redis = try RedisClient(url: try TestEnvironment.redisURL(), poolSize: 1)
        let prefix = TestEnvironment.unique("sw") + ":"
        let switches = ChannelSwitches(redis: redis, prefix: prefix)
        #expect(switches.key == "\(prefix)channels:paused")
        #expect(try await switches.paused().isEmpty)

        let before = Date()
        #expect(try await switches.pause("sms") == true)
        let after = Date()
        try await Task.sleep(for: .milliseconds(20))
        #expect(try await switches.pause("sms") == false, "already paused")
        #expect(try await switches.pause("push") == true)

        let paused = try await switches.paused()
        #expect(Set(paused.keys) == ["sms", "push"])
        let since = try #require(paused["sms"])
        // Milliseconds in Redis: the first pause's time, not the second's.
        #expect(since.timeIntervalSince1970 >= (before.timeIntervalSince1970 * 1000).rounded(.down) / 1000)
        #expect(since.timeIntervalSince1970 <= (after.timeIntervalSince1970 * 1000).rounded(.up) / 1000)

        // The key is one hash: field = channel, value = epoch ms.
        #expect(try await redis.send("TYPE", switches.key).string == "hash")
        let stored = try await redis.send("HGET", switches.key, "sms").int
        #expect(stored == Int64((since.timeIntervalSince1970 * 1000).rounded()))
        #expect(try await redis.send("HLEN", switches.key).int == 2)

        #expect(try await switches.resume("sms") == true)
        #expect(try await switches.resume("sms") == false, "not paused any more")
        #expect(try await switches.resume("email") == false, "never paused")
        #expect(Set(try await switches.paused().keys) == ["push"])
        #expect(try await redis.send("HEXISTS", switches.key, "sms").int == 0)

        // Another prefix is another cluster: it sees nothing of this one.
        #expect(try await ChannelSwitches(redis: redis, prefix: TestEnvironment.unique("sw") + ":").paused().isEmpty)
        #expect(try await switches.resume("push") == true)
        #expect(try await redis.send("EXISTS", switches.key).int == 0, "the last resume leaves no key behind")
    }
}
