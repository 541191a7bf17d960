import ReachCore

/// Where the in-app channel keeps and announces its messages. The service
/// wires `reach.inbox` and Redis `PUBLISH` behind it; the channel only sends.
public protocol InboxBackend: Sendable {
    /// Stores one campaign's messages once per user: a resend finds the stored
    /// message instead of inserting another. Returns each user's stored message.
    func store(campaignID: String, items: [(userID: String, title: String, body: String)]) async throws -> [InboxMessage]
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

    public func send(_ batch: [OutboundMessage]) async -> [SendOutcome] {
        var outcomes: [String: SendOutcome] = [:]
        for group in Dictionary(grouping: batch, by: \.campaignID).values {
            for (message, outcome) in zip(group, await sendOneCampaign(group)) { outcomes[message.messageID] = outcome }
        }
        return batch.map { outcomes[$0.messageID]! }
    }

    private func sendOneCampaign(_ messages: [OutboundMessage]) async -> [SendOutcome] {
        let stored: [InboxMessage]
        do {
            stored = try await backend.store(campaignID: messages[0].campaignID, items: messages.map { ($0.userID, $0.title, $0.body) })
        } catch {
            return Array(repeating: .retryable("\(error)"), count: messages.count)
        }
        do {
            // Every row, new or found: a found one may never have been published.
            if !stored.isEmpty { try await backend.publish(stored) }
        } catch {
            return Array(repeating: .retryable("publish: \(error)"), count: messages.count)
        }
        let idByUser = Dictionary(stored.map { ($0.userID, $0.id) }, uniquingKeysWith: { a, _ in a })
        return messages.map { m in idByUser[m.userID].map { .sent(String($0)) } ?? .retryable("inbox row missing") }
    }
}
