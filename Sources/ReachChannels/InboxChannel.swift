import ReachCore
import ReachPostgres
import ReachRedis

/// The `inapp` channel: a row in `reach.inbox` plus `PUBLISH <prefix>inapp:<user_id>`
/// with the row as JSON. A resend after a crash finds the row and does not
/// insert it again, but does publish it again: the crash may have come between
/// the row and its `PUBLISH`. The row is the record (once); the notification
/// goes out at least once, so a subscriber may see the same `id` twice.
public struct InboxChannel: Channel {
    public let name: String
    public let batchSize: Int
    public let concurrency: Int
    let store: InboxStore
    let redis: RedisClient
    let prefix: String

    public init(name: String, store: InboxStore, redis: RedisClient, prefix: String, batchSize: Int, concurrency: Int) {
        self.name = name
        self.store = store
        self.redis = redis
        self.prefix = prefix
        self.batchSize = batchSize
        self.concurrency = concurrency
    }

    public func send(_ batch: [OutboundMessage]) async -> [SendOutcome] {
        var outcomes: [String: SendOutcome] = [:]
        for group in Dictionary(grouping: batch, by: \.campaignID).values {
            for (message, outcome) in zip(group, await sendOneCampaign(group)) { outcomes[message.messageID] = outcome }
        }
        return batch.map { outcomes[$0.messageID]! }
    }

    private func sendOneCampaign(_ messages: [OutboundMessage]) async -> [SendOutcome] {
        do {
            let stored = try await store.insert(campaignID: messages[0].campaignID,
                                                items: messages.map { ($0.userID, $0.title, $0.body) })
            // Every row, new or found: a found one may never have been published.
            let toPublish = stored.map(\.message)
            if !toPublish.isEmpty {
                let replies = try await redis.pipeline(toPublish.map { m in
                    RedisCommand("PUBLISH", "\(prefix)inapp:\(m.userID)", Self.json(m))
                })
                if let error = replies.first(where: { $0.errorMessage != nil }) {
                    return Array(repeating: .retryable("publish: \(error)"), count: messages.count)
                }
            }
            let idByUser = Dictionary(stored.map { ($0.message.userID, $0.message.id) }, uniquingKeysWith: { a, _ in a })
            return messages.map { m in idByUser[m.userID].map { .sent(String($0)) } ?? .retryable("inbox row missing") }
        } catch {
            return Array(repeating: .retryable("\(error)"), count: messages.count)
        }
    }

    static func json(_ m: InboxStore.Message) -> String {
        var w = JSONObjectWriter()
        w.add("id", m.id)
        w.add("user_id", m.userID)
        w.add("campaign_id", m.campaignID)
        w.add("title", m.title)
        w.add("body", m.body)
        w.add("created_at", m.createdAt)
        return w.finish()
    }
}
