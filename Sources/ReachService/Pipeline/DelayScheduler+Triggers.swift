import Foundation
import Logging
import ReachCore
import ReachPostgres
import ReachRedis
import ServiceLifecycle
import Synchronization

/// Delayed trigger sends and their retries (they have no stored campaign: the item carries the rule and the event).
extension DelayScheduler {
    /// A delayed trigger send, or a retry of one.
    func fireTrigger(_ delayed: TriggerSender.Delayed, attempt: Int, channel: String?, gate: SendGate = .open) async throws {
        guard let event = try? TriggerEvent.parse(Array(delayed.event.utf8)) else { return }
        guard let rule = try await triggerRules.rule(id: delayed.rule_id) else {
            // The rule was disabled or deleted meanwhile: nothing will be sent, and the
            // user ends `skipped/cancelled` (SPEC's reason for a send stopped on purpose).
            try await cancelTriggerSend(campaignID: "t:\(delayed.rule_id):\(event.eventID)", userID: event.userID, channel: channel,
                                        attempts: max(0, attempt - 1), why: "trigger rule \(delayed.rule_id) was deleted or disabled")
            return
        }
        // Without a channel: the rule's delay is over, the first send, as if the event had just arrived.
        try await triggerSender.send([.init(rule: rule, event: event, attempt: channel.map { .again(channel: $0, number: attempt) } ?? .first)],
                                     gate: gate)
    }

    /// Ends a trigger send whose rule is gone: a retry's `scheduled` row (a
    /// row already settled stays), or a delayed first send, which has no row
    /// yet (`channel` nil), becomes `skipped/cancelled`.
    func cancelTriggerSend(campaignID: String, userID: String, channel: String?, attempts: Int, why: String) async throws {
        let current = try await deliveries.existing(campaignID: campaignID, userIDs: [userID])[userID]
        guard channel == nil ? current == nil : current == DeliveryStatus.scheduled.rawValue else { return }
        let row = DeliveryStore.Row.skipped(userID, channel: channel, .cancelled, attempts: attempts,
                                            messageID: MessageID.make(campaignID: campaignID, userID: userID), lastError: why)
        try await deliveries.record(campaignID: campaignID, rows: [row], checkpoint: nil)
        metrics.message(channel: channel ?? "none", status: .skipped)
        logger.info("trigger rule gone; pending send cancelled", metadata: ["campaign": "\(campaignID)", "why": "\(why)"])
    }

    /// Retries of trigger sends (campaign id `t:<rule>:<event_id>`, no stored
    /// campaign) whose queue item carries no rule and event: a dead-letter
    /// replay from before dead letters kept them, or a row the stale-row sweep
    /// re-queued. The context comes from the newest dead letter that has it;
    /// without one the send cannot be rendered again: `skipped/cancelled` when
    /// no rule matches the id any more, else `dead` (`trigger_context_lost`)
    /// with a dead letter. Either way the row ends; it is never re-queued forever.
    func retryTrigger(campaignID: String, _ retries: [DelayedWork.Retry], gate: SendGate) async throws {
        let contexts = try await DeadLetterStore(client: infrastructure.postgres)
            .triggerContexts(retries.map { ($0.campaign_id, $0.user_id) })
        var lost: [DelayedWork.Retry] = []
        for r in retries {
            if let text = contexts[DeliveryStore.pairKey(campaignID: campaignID, userID: r.user_id)],
               let delayed = TriggerSender.Delayed(json: text) {
                try await fireTrigger(delayed, attempt: r.attempts + 1, channel: r.channel, gate: gate)
            } else {
                lost.append(r)
            }
        }
        guard !lost.isEmpty else { return }
        try await triggerRules.fresh()
        if let rule = triggerRules.rule(forCampaignID: campaignID) {
            try await abandon(campaignID, lost, reason: .triggerContextLost,
                              error: "the event of trigger rule \(rule.id) is no longer known (its queue item and dead letter do not carry it); it cannot be rendered again")
        } else {
            for r in lost {
                try await cancelTriggerSend(campaignID: campaignID, userID: r.user_id, channel: r.channel, attempts: r.attempts,
                                            why: "no enabled trigger rule sends \(campaignID) any more (deleted or disabled)")
            }
        }
    }
}
