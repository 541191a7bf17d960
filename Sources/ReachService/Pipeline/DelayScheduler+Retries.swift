import Foundation
import Logging
import ReachCore
import ReachPostgres
import ReachRedis
import ServiceLifecycle
import Synchronization

/// One more attempt for queued retries of stored campaigns.
extension DelayScheduler {
    /// One more attempt for each retry of a campaign, on the channel first chosen.
    func retry(campaignID: String, _ retries: [Dispatcher.RetryPayload], gate: SendGate = .open) async throws {
        guard let stored = try await campaigns.spec(campaignID) else {
            // A trigger send has no stored campaign; a campaign that no longer exists has no rows left to settle.
            if campaignID.hasPrefix("t:") { try await retryTrigger(campaignID: campaignID, retries, gate: gate) }
            return
        }
        let task: CampaignTask
        do {
            guard case .campaign(let parsed) = try parser.parse(Array(stored.specJSON.utf8)) else {
                throw ValidationError("", "stored spec is not a campaign")
            }
            task = parsed
        } catch let error as ValidationError {
            // The stored task does not parse against today's configuration (a
            // channel was removed, say): retrying cannot fix that. The rows end
            // `dead` with the reason, the campaign `failed` with its error.
            try await abandon(campaignID, retries, error: "stored task no longer valid: \(error)")
            return
        }
        // Only rows still waiting for a retry; anything else was settled meanwhile.
        // A retry is queued just before its row is written: a row not there yet
        // is looked at again shortly (if its page is redone after a crash, the
        // row ends up settled and the retry is then dropped).
        let current = try await deliveries.existing(campaignID: campaignID, userIDs: retries.map(\.user_id))
        let notYetWritten = retries.filter { current[$0.user_id] == nil }
        var waiting = retries.filter { current[$0.user_id] == DeliveryStatus.scheduled.rawValue }
        if stored.state == CampaignState.paused.rawValue {
            try await reschedule(waiting + notYetWritten, campaignID: campaignID, in: .seconds(5))
            return
        }
        if CampaignState(rawValue: stored.state)?.isFinal == true && !notYetWritten.isEmpty {
            // The campaign ended and its page never wrote these rows (its runner lost
            // the lease; the next runner settled the users itself): nothing waits for them.
            logger.info("retries of an ended campaign without rows dropped", metadata: ["campaign": "\(campaignID)", "count": "\(notYetWritten.count)"])
        } else {
            try await reschedule(notYetWritten, campaignID: campaignID, in: .milliseconds(500))
        }
        guard !waiting.isEmpty else { return }
        waiting.sort { $0.user_id < $1.user_id }
        let expired = task.expiresAt.map { Date() >= $0 } ?? false
        let state = CampaignState(rawValue: stored.state)
        if state == .cancelled || expired {
            let reason: SkipReason = state == .cancelled ? .cancelled : .expired
            let rows = waiting.map { r in
                DeliveryStore.Row.skipped(r.user_id, channel: r.channel, reason, attempts: r.attempts,
                                          messageID: MessageID.make(campaignID: campaignID, userID: r.user_id))
            }
            try await deliveries.record(campaignID: campaignID, rows: rows, checkpoint: nil)
            return
        }
        let planner = try DeliveryPlanner(task: task, addressFields: registry.addressFields)
        let recipients = Dictionary(
            try await segments.page(.userIDs(waiting.map(\.user_id)), after: nil, limit: waiting.count).map { ($0.userID, $0) },
            uniquingKeysWith: { a, _ in a })
        var attempts: [Dispatcher.Attempt] = []
        var rows: [DeliveryStore.Row] = []
        for r in waiting {
            if let recipient = recipients[r.user_id], !recipient.isOptedOut(of: r.channel),
               let message = planner.message(for: recipient, channel: r.channel) {
                attempts.append(.init(message: message, number: r.attempts + 1, timezone: recipient.timezone, quietHours: task.quietHours))
            } else {
                let reason: SkipReason = recipients[r.user_id]?.isOptedOut(of: r.channel) == true ? .optedOut : .noAddress
                rows.append(.skipped(r.user_id, channel: r.channel, reason, attempts: r.attempts,
                                     messageID: MessageID.make(campaignID: campaignID, userID: r.user_id)))
            }
        }
        let result = try await dispatcher.deliver(attempts, acceptedAt: Date(timeIntervalSince1970: stored.createdAt), gate: gate)
        let logger = self.logger
        try await persist(logger, "retry rows") {
            try await deliveries.record(campaignID: campaignID, rows: rows + result.rows, checkpoint: nil, deadLetters: result.deadLetters)
        }
        if !result.complete {
            // Held back (this instance is stopping, or the items' lease ran short): try again soon.
            let settled = Set((rows + result.rows).map(\.userID))
            try await reschedule(waiting.filter { !settled.contains($0.user_id) }, campaignID: campaignID, in: .seconds(1))
        }
    }
}
