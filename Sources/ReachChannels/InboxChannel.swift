import ReachCore

/// Where the in-app channel keeps and announces its messages. The service
/// wires `reach.inbox` and Redis `PUBLISH` behind it; the channel only sends.
public protocol InboxBackend: Sendable {
    /// Stores messages once per (campaign, user): a resend finds the stored
    /// message instead of inserting another. Returns each stored message.
    func store(_ items: [(campaignID: String, userID: String, title: String, body: String)]) async throws -> [InboxMessage]
    /// Announces stored messages to their users; throws when any could not be announced.
    func publish(_ messages: [InboxMessage]) async throws
}

/// The `inapp` channel: a row in `reach.inbox` plus `PUBLISH <prefix>inapp:<user_id>`
/// with the row as JSON. A resend after a crash finds the row and does not
/// insert it again, but does publish it again: the crash may have come between
/// the row and its `PUBLISH`. The row is the record (once); the notification
/// goes out at least once, so a subscriber may see the same `id` twice.
public struct InboxChannel: Channel {
    public let name: String
    let backend: any InboxBackend

    public init(name: String, backend: any InboxBackend) {
        self.name = name
        self.backend = backend
    }

    /// One store and one publish for the whole batch, whatever campaigns it
    /// holds (a trigger batch is one campaign per event).
    public func send(_ batch: [OutboundMessage]) async -> [SendOutcome] {
        guard !batch.isEmpty else { return [] }
        let stored: [InboxMessage]
        do {
            stored = try await backend.store(batch.map { ($0.campaignID, $0.userID, $0.title, $0.body) })
        } catch {
            return Array(repeating: .retryable("\(error)"), count: batch.count)
        }
        do {
            // Every row, new or found: a found one may never have been published.
            if !stored.isEmpty { try await backend.publish(stored) }
        } catch {
            return Array(repeating: .retryable("publish: \(error)"), count: batch.count)
        }
        struct Key: Hashable { let campaignID: String, userID: String }
        let ids = Dictionary(stored.map { (Key(campaignID: $0.campaignID, userID: $0.userID), $0.id) }, uniquingKeysWith: { a, _ in a })
        return batch.map { m in ids[Key(campaignID: m.campaignID, userID: m.userID)].map { .sent(String($0)) } ?? .retryable("inbox row missing") }
    }
}
