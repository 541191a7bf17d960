import Foundation
import Logging
import ReachCore
import ReachPostgres
import ReachRedis
import ServiceLifecycle
import Synchronization

/// Fires due items of the Redis delay queue: today, delivery retries. Items are
/// claimed under a lease, their outcome written to PostgreSQL, then acknowledged;
/// an instance that dies mid-way leaves its items to the next claimer.
public final class DelayScheduler: Service, Sendable {
    let infrastructure: Infrastructure
    let registry: ChannelRegistry
    let metrics: PipelineMetrics
    let logger: Logger
    let owner: String
    let lease: Duration
    private let dispatcher: Dispatcher
    private let campaigns: CampaignStore
    private let deliveries: DeliveryStore
    private let segments: SegmentSource
    private let parser: TaskParser
    private let recurring: RecurringCampaigns
    let triggerRules: TriggerRules
    let triggerSender: TriggerSender
    let wake: WakeSignal

    public init(infrastructure: Infrastructure, registry: ChannelRegistry, breakers: ChannelBreakers, pauses: PausedChannels, metrics: PipelineMetrics,
                logger: Logger, owner: String,
                triggerRules: TriggerRules, wake: WakeSignal) {
        self.infrastructure = infrastructure
        self.registry = registry
        self.metrics = metrics
        self.logger = logger
        self.owner = owner
        self.lease = max(.milliseconds(max(infrastructure.configuration.pipeline.leaseMs, 30_000)), registry.longestTimeout * 3)
        self.dispatcher = Dispatcher(infrastructure: infrastructure, registry: registry, breakers: breakers, pauses: pauses, metrics: metrics,
                                     logger: logger, owner: owner)
        self.campaigns = CampaignStore(client: infrastructure.postgres)
        self.deliveries = DeliveryStore(client: infrastructure.postgres)
        self.segments = SegmentSource(client: infrastructure.postgres)
        // Retries of a recurring campaign's runs read tasks with run ids.
        self.parser = TaskParser(channels: Set(infrastructure.configuration.channels.keys), acceptsRunIDs: true)
        self.recurring = RecurringCampaigns(infrastructure: infrastructure, logger: logger, wake: wake.signal)
        self.triggerRules = triggerRules
        self.wake = wake
        self.triggerSender = TriggerSender(infrastructure: infrastructure, registry: registry, dispatcher: dispatcher, metrics: metrics)
    }


    var queue: DelayQueue { infrastructure.delayQueue }

    public func run() async throws {
        var attempt = 0
        var lastSweep = ContinuousClock.now
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                if ContinuousClock.now - lastSweep > .seconds(30) {
                    try await sweep()
                    lastSweep = ContinuousClock.now
                }
                var fired = 0
                for shard in 0..<queue.shards {
                    let claimedAt = ContinuousClock.now
                    let items = try await queue.claim(shard: shard, nowMs: Epoch.ms(), limit: 500, lease: lease, owner: owner)
                    guard !items.isEmpty else { continue }
                    try await handleLeased(items, claimedAt: claimedAt)
                    fired += items.count
                }
                attempt = 0
                if fired == 0 { try? await Task.sleep(for: .milliseconds(50)) }
            } catch {
                attempt += 1
                logger.warning("delay queue: will retry", metadata: ["error": "\(error)", "attempt": "\(attempt)"])
                try? await Task.sleep(for: Backoff(base: .milliseconds(100), max: .seconds(5)).delay(afterAttempt: attempt))
            }
        }
    }

    /// Works a claim of items while renewing their lease on its own clock. The
    /// gate closes before the lease can run out (less the longest provider
    /// time-out, so no request of this claim is on the wire once another
    /// scheduler may claim the items again) and when the instance stops.
    func handleLeased(_ items: [DelayQueue.Item], claimedAt: ContinuousClock.Instant) async throws {
        let deadline = Mutex(claimedAt + usableLease)
        let stopping = Mutex(false)
        let gate = SendGate {
            if stopping.withLock({ $0 }) { return .hold(.shuttingDown) }
            return ContinuousClock.now < deadline.withLock({ $0 }) ? .go : .hold(.leaseLost)
        }
        let renewal = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: lease / 4)
                let sentAt = ContinuousClock.now
                do {
                    try await queue.extend(items, nowMs: Epoch.ms(), lease: lease)
                    deadline.withLock { $0 = max($0, sentAt + usableLease) }
                } catch {
                    // The gate closes at the deadline already set; nothing else to do.
                    logger.warning("delay-queue lease not renewed", metadata: ["error": "\(error)", "items": "\(items.count)"])
                }
            }
        }
        defer { renewal.cancel() }
        try await withGracefulShutdownHandler {
            try await handle(items, gate: gate)
        } onGracefulShutdown: {
            stopping.withLock { $0 = true }
        }
        try await queue.ack(items)
    }

    /// How much of an item lease a scheduler may use to start requests.
    var usableLease: Duration { lease - registry.longestTimeout - max(lease / 5, .milliseconds(100)) }

    /// Re-queues `scheduled` rows that have waited far longer than any backoff
    /// allows and have no queue item (it was lost in a crash). A row whose item
    /// is still queued — a quiet-hours deferral waits for hours — keeps that
    /// item: replacing it would fire it early and, for a trigger send, lose the
    /// rule and event it carries. Safe to run anywhere.
    func sweep() async throws {
        let longestBackoff = registry.retryPolicies.values.map(\.backoff.max).max() ?? .seconds(60)
        let stale = try await deliveries.staleScheduled(olderThan: longestBackoff + .seconds(300))
        guard !stale.isEmpty else { return }
        let added = try await queue.scheduleMissing(try stale.map { row in
            try Dispatcher.RetryPayload(campaign_id: row.campaignID, user_id: row.userID, channel: row.channel, attempts: row.attempts)
                .queueItem(dueMs: Epoch.ms())
        })
        if added > 0 { logger.warning("re-queued retries that lost their queue item", metadata: ["count": "\(added)"]) }
    }


    func handle(_ items: [DelayQueue.Item], gate: SendGate = .open) async throws {
        var retries: [Dispatcher.RetryPayload] = []
        for item in items {
            let data = Data(item.payload.utf8)
            if item.payload.contains("\"cron_run\""), item.id.hasPrefix(RecurringCampaigns.itemPrefix) {
                // A recurring campaign's run is due: create it, queue the next one.
                try await recurring.fire(String(item.id.dropFirst(RecurringCampaigns.itemPrefix.count)))
                continue
            }
            if item.payload.contains("\"campaign_start\"") {
                // A timed campaign is due: the runner claims it from PostgreSQL now.
                wake.signal()
                continue
            }
            if let delayed = try? JSONDecoder().decode(TriggerSender.Delayed.self, from: data), delayed.kind == "trigger" {
                try await fireTrigger(delayed, attempt: 1, channel: nil, gate: gate)
                continue
            }
            guard let payload = try? JSONDecoder().decode(Dispatcher.RetryPayload.self, from: data), payload.kind == "retry" else {
                logger.error("delay queue item not understood; dropped", metadata: ["id": "\(item.id)"])
                continue
            }
            if let context = payload.trigger, let delayed = try? JSONDecoder().decode(TriggerSender.Delayed.self, from: Data(context.utf8)) {
                try await fireTrigger(delayed, attempt: payload.attempts + 1, channel: payload.channel, gate: gate)
                continue
            }
            retries.append(payload)
        }
        for (campaignID, group) in Dictionary(grouping: retries, by: \.campaign_id) {
            try await retry(campaignID: campaignID, group, gate: gate)
        }
    }

    func reschedule(_ retries: [Dispatcher.RetryPayload], campaignID: String, in delay: Duration) async throws {
        guard !retries.isEmpty else { return }
        let due = Epoch.ms() + delay.milliseconds
        try await queue.schedule(try retries.map { try $0.queueItem(dueMs: due) })
    }

    /// Ends retries that can never succeed: their rows (still `scheduled`)
    /// become `dead` with a dead letter, and the campaign `failed` (a trigger
    /// send has no campaign row: nothing to fail).
    func abandon(_ campaignID: String, _ retries: [Dispatcher.RetryPayload], reason: String = "invalid_task", error: String) async throws {
        let current = try await deliveries.existing(campaignID: campaignID, userIDs: retries.map(\.user_id))
        let waiting = retries.filter { current[$0.user_id] == "scheduled" }
        let rows = waiting.map { r in
            DeliveryStore.Row(userID: r.user_id, channel: r.channel, status: "dead", reason: reason, attempts: r.attempts,
                              messageID: MessageID.make(campaignID: campaignID, userID: r.user_id), lastError: error)
        }
        let letters = waiting.map { r in
            DeliveryStore.DeadLetter(userID: r.user_id, channel: r.channel, reason: reason, error: error, attempts: r.attempts,
                                     payloadJSON: #"{"campaign_id":\#(JSONText.quote(campaignID)),"user_id":\#(JSONText.quote(r.user_id))}"#,
                                     messageID: MessageID.make(campaignID: campaignID, userID: r.user_id))
        }
        try await deliveries.record(campaignID: campaignID, rows: rows, checkpoint: nil, deadLetters: letters)
        try await campaigns.failUnowned(campaignID, error: error)
        logger.error("retries abandoned", metadata: ["campaign": "\(campaignID)", "count": "\(waiting.count)", "error": "\(error)"])
    }

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
        if let channel {
            try await triggerSender.resend(rule: rule, event: event, attempt: attempt, channel: channel, gate: gate)
        } else {
            // The rule's delay is over: the first send, as if the event had just arrived.
            try await triggerSender.sendFirst([(rule, event)], gate: gate)
        }
    }

    /// Ends a trigger send whose rule is gone: a retry's `scheduled` row (a
    /// row already settled stays), or a delayed first send, which has no row
    /// yet (`channel` nil), becomes `skipped/cancelled`.
    func cancelTriggerSend(campaignID: String, userID: String, channel: String?, attempts: Int, why: String) async throws {
        let current = try await deliveries.existing(campaignID: campaignID, userIDs: [userID])[userID]
        guard channel == nil ? current == nil : current == "scheduled" else { return }
        let row = DeliveryStore.Row(userID: userID, channel: channel, status: "skipped", reason: "cancelled", attempts: attempts,
                                    messageID: MessageID.make(campaignID: campaignID, userID: userID),
                                    lastError: why)
        try await deliveries.record(campaignID: campaignID, rows: [row], checkpoint: nil)
        metrics.message(channel: channel ?? "none", status: "skipped")
        logger.info("trigger rule gone; pending send cancelled", metadata: ["campaign": "\(campaignID)", "why": "\(why)"])
    }

    /// Retries of trigger sends (campaign id `t:<rule>:<event_id>`, no stored
    /// campaign) whose queue item carries no rule and event: a dead-letter
    /// replay from before dead letters kept them, or a row the stale-row sweep
    /// re-queued. The context comes from the newest dead letter that has it;
    /// without one the send cannot be rendered again: `skipped/cancelled` when
    /// no rule matches the id any more, else `dead` (`trigger_context_lost`)
    /// with a dead letter. Either way the row ends; it is never re-queued forever.
    func retryTrigger(campaignID: String, _ retries: [Dispatcher.RetryPayload], gate: SendGate) async throws {
        let contexts = try await DeadLetterStore(client: infrastructure.postgres)
            .triggerContexts(retries.map { ($0.campaign_id, $0.user_id) })
        var lost: [Dispatcher.RetryPayload] = []
        for r in retries {
            if let text = contexts[DeliveryStore.pairKey(campaignID: campaignID, userID: r.user_id)],
               let delayed = try? JSONDecoder().decode(TriggerSender.Delayed.self, from: Data(text.utf8)) {
                try await fireTrigger(delayed, attempt: r.attempts + 1, channel: r.channel, gate: gate)
            } else {
                lost.append(r)
            }
        }
        guard !lost.isEmpty else { return }
        try await triggerRules.fresh()
        if let rule = triggerRules.rule(forCampaignID: campaignID) {
            try await abandon(campaignID, lost, reason: "trigger_context_lost",
                              error: "the event of trigger rule \(rule.id) is no longer known (its queue item and dead letter do not carry it); it cannot be rendered again")
        } else {
            for r in lost {
                try await cancelTriggerSend(campaignID: campaignID, userID: r.user_id, channel: r.channel, attempts: r.attempts,
                                            why: "no enabled trigger rule sends \(campaignID) any more (deleted or disabled)")
            }
        }
    }

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
        var waiting = retries.filter { current[$0.user_id] == "scheduled" }
        if stored.state == "paused" {
            try await reschedule(waiting + notYetWritten, campaignID: campaignID, in: .seconds(5))
            return
        }
        if ["done", "failed", "cancelled"].contains(stored.state) && !notYetWritten.isEmpty {
            // The campaign ended and its page never wrote these rows (its runner lost
            // the lease; the next runner settled the users itself): nothing waits for them.
            logger.info("retries of an ended campaign without rows dropped", metadata: ["campaign": "\(campaignID)", "count": "\(notYetWritten.count)"])
        } else {
            try await reschedule(notYetWritten, campaignID: campaignID, in: .milliseconds(500))
        }
        guard !waiting.isEmpty else { return }
        waiting.sort { $0.user_id < $1.user_id }
        let expired = task.expiresAt.map { Date() >= $0 } ?? false
        if stored.state == "cancelled" || expired {
            let reason = stored.state == "cancelled" ? "cancelled" : "expired"
            let rows = waiting.map { r in
                DeliveryStore.Row(userID: r.user_id, channel: r.channel, status: "skipped", reason: reason, attempts: r.attempts,
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
                let reason = recipients[r.user_id]?.isOptedOut(of: r.channel) == true ? "opted_out" : "no_address"
                rows.append(.init(userID: r.user_id, channel: r.channel, status: "skipped", reason: reason, attempts: r.attempts,
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

/// Puts delivery dead letters on `reach.dlq`, from the PostgreSQL outbox.
public struct DeadLetterPublisher: Service {
    let infrastructure: Infrastructure
    let logger: Logger

    public init(infrastructure: Infrastructure, logger: Logger) {
        self.infrastructure = infrastructure
        self.logger = logger
    }

    public func run() async throws {
        let store = DeadLetterStore(client: infrastructure.postgres)
        let producer = infrastructure.producer
        let topic = infrastructure.configuration.kafka.topics.dlq
        let maxBytes = infrastructure.configuration.kafka.dlqMaxBytes
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                let published = try await store.publishPending { letter in
                    let (key, value) = Self.fit(letter.json, key: letter.key, maxBytes: maxBytes)
                    try await producer.send(topic: topic, key: key, value: value)
                }
                if published == 0 { try? await Task.sleep(for: .milliseconds(250)) }
            } catch {
                logger.warning("dead letters not published yet; will retry", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }
}

extension DeadLetterPublisher {
    /// A delivery dead letter cut to fit `kafka.dlq_max_bytes` (key included):
    /// when it is over, `payload` becomes its JSON text as a string, cut and
    /// marked, long strings (the error) are cut and marked, and
    /// `"truncated": true` is added. The table keeps the whole row.
    static func fit(_ json: String, key: String?, maxBytes: Int) -> (key: String?, value: String) {
        var key = key
        if let k = key, k.utf8.count > InputDeadLetters.maxKeyBytes { key = JSONText.cut(k, maxBytes: InputDeadLetters.maxKeyBytes).text }
        let budget = maxBytes - InputDeadLetters.recordOverhead - (key?.utf8.count ?? 0)
        guard json.utf8.count > budget else { return (key, json) }
        var fields: [String: JSONValue] = [:]
        var payloadText = json
        if case .object(let o)? = try? JSONParser.parse(json) {
            fields = o
            payloadText = fields.removeValue(forKey: "payload").map { $0.jsonText } ?? ""
            for (name, value) in fields {
                if case .string(let s) = value, s.utf8.count > InputDeadLetters.maxErrorBytes {
                    fields[name] = .string(JSONText.cut(s, maxBytes: InputDeadLetters.maxErrorBytes).text)
                }
            }
        }
        fields["truncated"] = .bool(true)
        let head = JSONValue.object(fields).jsonText
        let (payload, _) = JSONText.quote(payloadText, maxBytes: budget - head.utf8.count - #","payload":"#.utf8.count)
        return (key, String(head.dropLast()) + #","payload":"# + payload + "}")
    }
}
