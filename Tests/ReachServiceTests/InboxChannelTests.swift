import Foundation
import ReachChannels
import ReachCore
import ReachPostgres
import ReachRedis
import ReachService
import Testing
import TestSupport

@Suite("in-app channel: inbox row plus PUBLISH")
struct InboxChannelTests {
    @Test("a resend after a crash between the inbox row and its PUBLISH still publishes (at least once), and keeps one row")
    func resendPublishes() async throws {
        let url = try await TestDatabase.migrated()
        let pg = PostgresClient(url: url, poolSize: 1)
        let redisURL = try TestEnvironment.redisURL()
        let redis = try RedisClient(url: redisURL, poolSize: 1)
        let prefix = TestEnvironment.unique("t") + ":"
        let store = InboxStore(client: pg)
        let channel = InboxChannel(name: "inapp", backend: InboxWiring(postgres: pg, redis: redis, prefix: prefix))
        let message = OutboundMessage(messageID: "m-1", campaignID: "c-crash", userID: "u1", channel: "inapp", to: "u1",
                                      title: "T", body: "after the crash")
        // The first attempt wrote the row, then the process died before PUBLISH.
        let first = try await store.insert(campaignID: message.campaignID, items: [(message.userID, message.title, message.body)])
        #expect(first.count == 1 && first[0].isNew)

        // A second connection listens the way an app's websocket gateway would.
        let redisPort = try #require(URL(string: redisURL)?.port)
        let subscriber = try spawn("redis-cli", ["-p", "\(redisPort)", "--csv", "subscribe", "\(prefix)inapp:u1"])
        defer { subscriber.signal(SIGKILL); _ = subscriber.waitBlocking() }
        #expect(try await eventually { subscriber.output.contains("subscribe") })

        let outcomes = await channel.send([message])
        #expect(outcomes == [.sent(String(first[0].message.id))], "the resend reports the stored row")
        #expect(try await eventually { subscriber.output.contains("\"message\"") }, "the notification went out: \(subscriber.output)")
        #expect(subscriber.output.contains("after the crash") && subscriber.output.contains("c-crash"))
        #expect(try await pg.query("SELECT count(*) FROM reach.inbox WHERE campaign_id = 'c-crash'").first?.int(0) == 1,
                "the row is not inserted twice")
    }
}
