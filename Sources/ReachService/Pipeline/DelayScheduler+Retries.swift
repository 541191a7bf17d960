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
    func retry(campaignID: String, _ retries: [DelayedWork.Retry], gate: SendGate = .open) async throws {
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
        // What each retry does now, from its row and the campaign's state.
        let rows = try await deliveries.existing(campaignID: campaignID, userIDs: retries.map(\.user_id))
        let state = CampaignState(rawValue: stored.state)
        var due: [DelayedWork.Retry] = []
        var later: [Duration: [DelayedWork.Retry]] = [:]
        var dropped = 0
        for r in retries {
            switch RetryStep.decide(row: rows[r.user_id].flatMap(DeliveryStatus.init(rawValue:)), campaign: state) {
            case .attempt: due.append(r)
            case .later(let after): later[after, default: []].append(r)
            case .drop: dropped += 1
            case .settled: break
            }
        }
        for (after, group) in later { try await reschedule(group, campaignID: campaignID, in: after) }
        if dropped > 0 {
            logger.info("retries of an ended campaign without rows dropped", metadata: ["campaign": "\(campaignID)", "count": "\(dropped)"])
        }
        guard !due.isEmpty else { return }
        due.sort { $0.user_id < $1.user_id }
        let planner = try DeliveryPlanner(task: task, addressFields: registry.addressFields)
        let recipients = Dictionary(
            try await segments.page(.userIDs(due.map(\.user_id)), after: nil, limit: due.count).map { ($0.userID, $0) },
            uniquingKeysWith: { a, _ in a })
        let sends = due.map { r in
            DeliveryPipeline.Send(recipient: recipients[r.user_id] ?? Recipient(userID: r.user_id), planner: planner,
                                  attempt: .again(channel: r.channel, number: r.attempts + 1), quietHours: task.quietHours,
                                  known: recipients[r.user_id] != nil)
        }
        // The campaign's own verdict first (cancelled or expired: its users are settled `skipped`), then the items' lease.
        let expiresAt = task.expiresAt
        let campaignGate = SendGate {
            let verdict = SendVerdict.campaign(stopping: false, leaseLost: false, leaseUsable: true, state: state, expiresAt: expiresAt, now: Date())
            return verdict == .go ? gate.check() : verdict
        }
        let plan = DeliveryPipeline.Plan(kind: .task, acceptedAt: Date(timeIntervalSince1970: stored.createdAt), gate: campaignGate,
                                         spread: .campaign(shards: stored.shards))
        let settled = try await pipeline.deliver(sends, plan) { outcome in
            try await deliveries.record(campaignID: campaignID, rows: outcome.rows, checkpoint: nil,
                                        deadLetters: outcome.deadLetters.map(\.letter))
            return outcome.complete ? nil : Set(outcome.rows.map(\.userID))
        }
        if let settled {
            // Held back (this instance is stopping, or the items' lease ran short): try again soon.
            try await reschedule(due.filter { !settled.contains($0.user_id) }, campaignID: campaignID, in: .seconds(1))
        }
    }
}
