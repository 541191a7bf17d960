import Foundation
import ReachPostgres
import ReachRedis

/// Re-queues dead deliveries (the CLI's `reachd dlq replay` and the HTTP API
/// use this). A replayed message keeps its `message_id` and goes through the
/// same idempotency claim, so it is still sent at most once.
public struct DeadLetterReplay: Sendable {
    let store: DeadLetterStore
    let queue: DelayQueue

    public init(postgres: PostgresClient, queue: DelayQueue) {
        self.store = DeadLetterStore(client: postgres)
        self.queue = queue
    }

    /// Returns how many deliveries were put back in line.
    @discardableResult
    public func replay(_ filter: DeadLetterStore.ReplayFilter) async throws -> Int {
        let letters = try await store.replayable(filter)
        guard !letters.isEmpty else { return 0 }
        // Rows first, then the queue: a crash in between leaves `scheduled`
        // rows without a queue item, which the delay scheduler's sweep re-queues.
        let changed = Set(try await store.markReplayed(letters))
        let now = Epoch.ms()
        try await queue.schedule(letters.filter { changed.contains($0.id) }.map { letter in
            // A trigger send carries its rule and event: it has no stored campaign to be rebuilt from.
            DelayedWork.Retry(campaign_id: letter.campaignID, user_id: letter.userID, channel: letter.channel, attempts: 0,
                                        trigger: letter.trigger).queueItem(dueMs: now)
        })
        return changed.count
    }
}
