import Foundation
import Logging
import ReachCore
import ReachKafka
import ReachPostgres
import ServiceLifecycle
import Synchronization

final class PlannerCache: Sendable {
    let entries = Mutex<[String: (rule: TriggerRule, planner: DeliveryPlanner)]>([:])
}

/// Sends one rule's message for one event (now, from a delayed queue item, or as a retry).
struct TriggerSender: Sendable {
    /// The rule and the event of one trigger send: all a delayed send, a retry or a replay needs to rebuild it.
    struct Delayed: Codable, Sendable {
        var kind = "trigger"
        var rule_id: String
        var event: String

        init(rule_id: String, event: String) {
            self.rule_id = rule_id
            self.event = event
        }

        /// From its JSON text (a retry's `trigger`, a dead letter's `payload.trigger`).
        init?(json: String) {
            guard let decoded = try? JSONDecoder().decode(Delayed.self, from: Data(json.utf8)) else { return nil }
            self = decoded
        }

        var json: String { DelayedWork.triggerSend(self).payload }
    }

    let infrastructure: Infrastructure
    let registry: ChannelRegistry
    let dispatcher: Dispatcher
    let metrics: PipelineMetrics
    /// Each rule's templates, compiled once (per version of the rule).
    let planners = PlannerCache()
    var logger = Logger(label: "reach.triggers")

    func planner(for rule: TriggerRule, event: TriggerEvent) throws -> DeliveryPlanner {
        let base: DeliveryPlanner
        if let cached = planners.entries.withLock({ $0[rule.id] }), cached.rule == rule {
            base = cached.planner
        } else {
            base = try DeliveryPlanner(task: rule.task(for: event), addressFields: registry.addressFields)
            planners.entries.withLock { $0[rule.id] = (rule, base) }
        }
        return base.retargeted(campaignID: rule.campaignID(for: event), properties: event.properties)
    }

    static func delayedID(_ campaignID: String) -> String { "trigger:\(campaignID)" }

    /// First attempts for many (rule, event) pairs at once: one query for the
    /// rows that exist (redelivered events), one for the recipients, one
    /// idempotency round trip, provider batches across events, one transaction
    /// for all rows. Pairs must be distinct. `consumedAt`: when their events were
    /// read from Kafka, where `reach_end_to_end_seconds{kind="event"}` starts
    /// (a delayed rule's send, fired from the queue, counts from its firing).
    func sendFirst(_ pairs: [(rule: TriggerRule, event: TriggerEvent)], consumedAt: Date = Date(), gate: SendGate = .open) async throws {
        guard !pairs.isEmpty else { return }
        let deliveries = DeliveryStore(client: infrastructure.postgres)
        let done = try await deliveries.existing(pairs.map { ($0.rule.campaignID(for: $0.event), $0.event.userID) })
        let todo = pairs.filter { !done.contains(DeliveryStore.pairKey(campaignID: $0.rule.campaignID(for: $0.event), userID: $0.event.userID)) }
        guard !todo.isEmpty else { return }
        let userIDs = Array(Set(todo.map(\.event.userID)))
        var recipients: [String: Recipient] = [:]
        for r in try await SegmentSource(client: infrastructure.postgres).page(.userIDs(userIDs), after: nil, limit: userIDs.count) {
            recipients[r.userID] = r
        }
        var rows: [(campaignID: String, row: DeliveryStore.Row)] = []
        var attempts: [Dispatcher.Attempt] = []
        var campaignOf: [String: String] = [:]
        for (rule, event) in todo {
            let campaignID = rule.campaignID(for: event)
            let recipient = recipients[event.userID] ?? Recipient(userID: event.userID)
            let planner: DeliveryPlanner
            do {
                planner = try self.planner(for: rule, event: event)
            } catch {
                // Rules are compiled when loaded, so this is not expected; if it happens the
                // rule is at fault, not the infrastructure: retrying would stall the partition.
                logger.error("trigger rule cannot render; send dropped", metadata: ["rule": "\(rule.id)", "error": "\(error)"])
                continue
            }
            switch planner.plan(recipient) {
            case .skip(let reason, let channel):
                rows.append((campaignID, .skipped(event.userID, channel: channel, reason, attempts: 0,
                                                  messageID: MessageID.make(campaignID: campaignID, userID: event.userID))))
                metrics.message(channel: channel ?? "none", status: "skipped")
            case .send(let message):
                let context = Delayed(rule_id: rule.id, event: event.json).json
                campaignOf[message.messageID] = campaignID
                attempts.append(.init(message: message, number: 1, timezone: recipient.timezone, quietHours: rule.quietHours, context: context))
            }
        }
        let result = try await dispatcher.deliver(attempts, acceptedAt: consumedAt, kind: "event", gate: gate)
        rows += result.rows.map { (campaignOf[$0.messageID] ?? "", $0) }
        let letters = result.deadLetters.map { (campaignOf[$0.messageID ?? ""] ?? "", $0) }
        // What the providers accepted is written before anything else happens.
        try await persist(logger, "trigger rows") { try await deliveries.recordEach(rows: rows, deadLetters: letters) }
        if !result.complete { throw HeldBack() }
    }

    /// Another attempt on `channel` for a send whose row is `scheduled`: a retry
    /// (`attempt` > 1) or a deferral that spent no attempt (open breaker, quiet
    /// hours: `attempt` is 1 again). Anything but `scheduled` means it is settled.
    func resend(rule: TriggerRule, event: TriggerEvent, attempt: Int, channel: String, gate: SendGate = .open) async throws {
        let campaignID = rule.campaignID(for: event)
        let deliveries = DeliveryStore(client: infrastructure.postgres)
        guard try await deliveries.existing(campaignID: campaignID, userIDs: [event.userID])[event.userID] == DeliveryStatus.scheduled.rawValue else { return }
        let planner = try planner(for: rule, event: event)
        let recipient = try await SegmentSource(client: infrastructure.postgres).page(.userIDs([event.userID]), after: nil, limit: 1).first
            ?? Recipient(userID: event.userID)
        var rows: [DeliveryStore.Row] = []
        var attempts: [Dispatcher.Attempt] = []
        if !recipient.isOptedOut(of: channel), let message = planner.message(for: recipient, channel: channel) {
            let context = Delayed(rule_id: rule.id, event: event.json).json
            attempts.append(.init(message: message, number: attempt, timezone: recipient.timezone, quietHours: rule.quietHours, context: context))
        } else {
            rows.append(.skipped(event.userID, channel: channel, recipient.isOptedOut(of: channel) ? .optedOut : .noAddress,
                                 attempts: attempt - 1, messageID: MessageID.make(campaignID: campaignID, userID: event.userID)))
        }
        let result = try await dispatcher.deliver(attempts, acceptedAt: Date(), kind: "event", gate: gate)
        try await persist(logger, "trigger rows") {
            try await deliveries.record(campaignID: campaignID, rows: rows + result.rows, checkpoint: nil, deadLetters: result.deadLetters)
        }
        if !result.complete { throw HeldBack() }
    }

    /// Sends were held back (the instance is stopping, or a delay-queue lease
    /// ran short): the caller keeps its offset or queue item, so they are tried again.
    struct HeldBack: Error, CustomStringConvertible {
        var description: String { "sends held back; they will be tried again" }
    }
}
