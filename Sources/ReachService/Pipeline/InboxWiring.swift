import ReachChannels
import ReachCore
import ReachPostgres
import ReachRedis

/// The in-app channel's backend: rows in `reach.inbox`, announcements by
/// Redis `PUBLISH <prefix>inapp:<user_id>` (pipelined, one round trip a batch).
public struct InboxWiring: InboxBackend {
    let inbox: InboxStore
    let redis: RedisClient
    let prefix: String

    public init(postgres: PostgresClient, redis: RedisClient, prefix: String) {
        self.inbox = InboxStore(client: postgres)
        self.redis = redis
        self.prefix = prefix
    }

    public func store(_ items: [(campaignID: String, userID: String, title: String, body: String)]) async throws -> [InboxMessage] {
        try await inbox.insert(items).map(\.message)
    }

    public func publish(_ messages: [InboxMessage]) async throws {
        let replies = try await redis.pipeline(messages.map { RedisCommand("PUBLISH", "\(prefix)inapp:\($0.userID)", $0.json) })
        if let error = replies.first(where: { $0.errorMessage != nil }) { throw PublishFailed(reply: "\(error)") }
    }

    struct PublishFailed: Error, CustomStringConvertible {
        let reply: String
        var description: String { "Redis refused PUBLISH: \(reply)" }
    }
}
