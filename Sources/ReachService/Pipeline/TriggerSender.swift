import Foundation
import Logging
import ReachCore
import ReachKafka
import ReachPostgres
import ServiceLifecycle
import Synchronization

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
    let pipeline: DeliveryPipeline
    let metrics: PipelineMetrics
    /// Each rule's templates, compiled once (per version of the rule).
    let planners = PlannerCache()

    final class PlannerCache: Sendable {
        let entries = Mutex<[String: (rule: TriggerRule, planner: DeliveryPlanner)]>([:])
    }
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

    /// A trigger send: one rule's message for one event, first or again.
    struct Request: Sendable {
        var rule: TriggerRule
        var event: TriggerEvent
        var attempt: DeliveryPipeline.Send.Attempt = .first
    }

    /// Sends for many (rule, event) pairs at once: one query for the rows that
    /// exist, one for the recipients, then one pass through the pipeline
    /// (provider batches across events) and one transaction for all rows.
    /// A first send goes only to a pair without a row (a redelivered event
    /// sends nothing); a further attempt only to a row still `scheduled`.
    /// Pairs must be distinct. `consumedAt`: when their events were read from
    /// Kafka, where `reach_end_to_end_seconds{kind="event"}` starts (a delayed
    /// rule's send, fired from the queue, counts from its firing).
    func send(_ requests: [Request], consumedAt: Date = Date(), gate: SendGate = .open) async throws {
        guard !requests.isEmpty else { return }
        let deliveries = DeliveryStore(client: infrastructure.postgres)
        // The rows that exist and the recipients, in one round trip's time (two connections):
        // the recipients of pairs that turn out to have rows are read for nothing, which is rare.
        let userIDs = Array(Set(requests.map(\.event.userID)))
        async let found = SegmentSource(client: infrastructure.postgres).page(.userIDs(userIDs), after: nil, limit: userIDs.count)
        let rows = try await deliveries.statuses(requests.map { ($0.rule.campaignID(for: $0.event), $0.event.userID) })
        let todo = requests.filter { request in
            let row = rows[DeliveryStore.pairKey(campaignID: request.rule.campaignID(for: request.event), userID: request.event.userID)]
            if case .first = request.attempt { return row == nil }
            return row == DeliveryStatus.scheduled.rawValue
        }
        var recipients: [String: Recipient] = [:]
        for r in try await found { recipients[r.userID] = r }
        guard !todo.isEmpty else { return }
        var sends: [DeliveryPipeline.Send] = []
        for request in todo {
            let planner: DeliveryPlanner
            do {
                planner = try self.planner(for: request.rule, event: request.event)
            } catch {
                // Rules are compiled when loaded, so this is not expected; if it happens the
                // rule is at fault, not the infrastructure: retrying would stall the partition.
                logger.error("trigger rule cannot render; send dropped", metadata: ["rule": "\(request.rule.id)", "error": "\(error)"])
                continue
            }
            sends.append(.init(recipient: recipients[request.event.userID] ?? Recipient(userID: request.event.userID), planner: planner,
                               attempt: request.attempt, quietHours: request.rule.quietHours,
                               trigger: Delayed(rule_id: request.rule.id, event: request.event.json).json))
        }
        let plan = DeliveryPipeline.Plan(kind: .event, acceptedAt: consumedAt, gate: gate)
        // What the providers accepted is written before anything else happens.
        let complete = try await pipeline.deliver(sends, plan) { outcome in
            try await deliveries.recordEach(rows: outcome.rows, campaignIDs: outcome.rowCampaignIDs, deadLetters: outcome.deadLetters)
            return outcome.complete
        }
        if !complete { throw HeldBack() }
    }

    /// Sends were held back (the instance is stopping, or a delay-queue lease
    /// ran short): the caller keeps its offset or queue item, so they are tried again.
    struct HeldBack: Error, CustomStringConvertible {
        var description: String { "sends held back; they will be tried again" }
    }
}
