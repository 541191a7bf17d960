import Foundation
import Logging
import ReachCore
import ReachPostgres
import ReachRedis
import ServiceLifecycle
import Synchronization

/// Delayed trigger sends and their retries (they have no stored campaign: the item carries the rule and the event).
extension DelayScheduler {
    /// A due trigger send: a delayed first send (`channel` nil, attempt 1) or a further attempt on `channel`.
    struct DueTrigger: Sendable {
        var delayed: TriggerSender.Delayed
        var attempt: Int = 1
        var channel: String? = nil
    }

    /// Fires due trigger sends together: one pass through the pipeline for all of
    /// them (one row query, one recipient query, one claim, one write), as the
    /// intake does for a batch of events. A send whose rule was disabled or
    /// deleted meanwhile sends nothing and ends `skipped/cancelled` (SPEC's
    /// reason for a send stopped on purpose).
    func fireTriggers(_ due: [DueTrigger], gate: SendGate = .open) async throws {
        var requests: [TriggerSender.Request] = []
        var seen: Set<String> = []
        for send in due {
            guard let event = try? TriggerEvent.parse(Array(send.delayed.event.utf8)) else { continue }
            guard let rule = try await triggerRules.rule(id: send.delayed.rule_id) else {
                try await cancelTriggerSend(campaignID: "t:\(send.delayed.rule_id):\(event.eventID)", userID: event.userID, channel: send.channel,
                                            attempts: max(0, send.attempt - 1), why: "trigger rule \(send.delayed.rule_id) was deleted or disabled")
                continue
            }
            // The pipeline takes each (campaign, user) once; a second item for it would find its row settled.
            guard seen.insert(DeliveryStore.pairKey(campaignID: rule.campaignID(for: event), userID: event.userID)).inserted else { continue }
            // Without a channel: the rule's delay is over, the first send, as if the event had just arrived.
            requests.append(.init(rule: rule, event: event, attempt: send.channel.map { .again(channel: $0, number: send.attempt) } ?? .first))
        }
        try await triggerSender.send(requests, gate: gate)
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
        var due: [DueTrigger] = []
        for r in retries {
            if let text = contexts[DeliveryStore.pairKey(campaignID: campaignID, userID: r.user_id)],
               let delayed = TriggerSender.Delayed(json: text) {
                due.append(DueTrigger(delayed: delayed, attempt: r.attempts + 1, channel: r.channel))
            } else {
                lost.append(r)
            }
        }
        try await fireTriggers(due, gate: gate)
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
