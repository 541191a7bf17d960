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
    let pipeline: DeliveryPipeline
    let logger: Logger
    let lease: Duration
    let campaigns: CampaignStore
    let deliveries: DeliveryStore
    let segments: SegmentSource
    let parser: TaskParser
    let recurring: RecurringCampaigns
    let triggerRules: TriggerRules
    let triggerSender: TriggerSender
    let wake: WakeSignal

    init(infrastructure: Infrastructure, pipeline: DeliveryPipeline, logger: Logger, triggerRules: TriggerRules, wake: WakeSignal) {
        self.infrastructure = infrastructure
        self.logger = logger
        self.lease = max(.milliseconds(max(infrastructure.configuration.pipeline.leaseMs, 30_000)), pipeline.registry.longestTimeout * 3)
        self.pipeline = pipeline
        self.campaigns = CampaignStore(client: infrastructure.postgres)
        self.deliveries = DeliveryStore(client: infrastructure.postgres)
        self.segments = SegmentSource(client: infrastructure.postgres)
        // Retries of a recurring campaign's runs read tasks with run ids.
        self.parser = TaskParser(channels: Set(infrastructure.configuration.channels.keys), acceptsRunIDs: true)
        self.recurring = RecurringCampaigns(infrastructure: infrastructure, logger: logger, wake: wake.signal)
        self.triggerRules = triggerRules
        self.wake = wake
        self.triggerSender = TriggerSender(infrastructure: infrastructure, registry: pipeline.registry, pipeline: pipeline, metrics: pipeline.metrics)
    }

    var queue: DelayQueue { infrastructure.delayQueue }
    var registry: ChannelRegistry { pipeline.registry }
    var metrics: PipelineMetrics { pipeline.metrics }
    var owner: String { pipeline.owner }

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
        let longestBackoff = registry.policies.values.map(\.retry.backoff.max).max() ?? .seconds(60)
        // StaleRow: idle long enough (SQL), and its item gone (`scheduleMissing` adds only missing ids).
        let stale = try await deliveries.staleScheduled(olderThan: StaleRow.minimumIdle(longestBackoff: longestBackoff))
        guard !stale.isEmpty else { return }
        let added = try await queue.scheduleMissing(stale.map { row in
            DelayedWork.Retry(campaign_id: row.campaignID, user_id: row.userID, channel: row.channel, attempts: row.attempts)
                .queueItem(dueMs: Epoch.ms())
        })
        if added > 0 { logger.warning("re-queued retries that lost their queue item", metadata: ["count": "\(added)"]) }
    }

    func handle(_ items: [DelayQueue.Item], gate: SendGate = .open) async throws {
        var retries: [DelayedWork.Retry] = []
        var triggers: [DueTrigger] = []
        for item in items {
            switch DelayedWork(payload: item.payload) {
            case .cronRun? where item.id.hasPrefix(RecurringCampaigns.itemPrefix):
                // A recurring campaign's run is due: create it, queue the next one.
                try await recurring.fire(String(item.id.dropFirst(RecurringCampaigns.itemPrefix.count)))
            case .campaignStart?:
                // A timed campaign is due: the runner claims it from PostgreSQL now.
                wake.signal()
            case .triggerSend(let delayed)?:
                triggers.append(DueTrigger(delayed: delayed))
            case .retry(let payload)?:
                if let delayed = payload.triggerSend {
                    triggers.append(DueTrigger(delayed: delayed, attempt: payload.attempts + 1, channel: payload.channel))
                } else {
                    retries.append(payload)
                }
            case .cronRun?, nil:
                logger.error("delay queue item not understood; dropped", metadata: ["id": "\(item.id)"])
            }
        }
        // Trigger sends of the whole claim together; campaign retries per campaign.
        try await fireTriggers(triggers, gate: gate)
        for (campaignID, group) in Dictionary(grouping: retries, by: \.campaign_id) {
            try await retry(campaignID: campaignID, group, gate: gate)
        }
    }

    func reschedule(_ retries: [DelayedWork.Retry], campaignID: String, in delay: Duration) async throws {
        guard !retries.isEmpty else { return }
        let due = Epoch.ms() + delay.milliseconds
        try await queue.schedule(retries.map { $0.queueItem(dueMs: due) })
    }

    /// Ends retries that can never succeed: their rows (still `scheduled`)
    /// become `dead` with a dead letter, and the campaign `failed` (a trigger
    /// send has no campaign row: nothing to fail).
    func abandon(_ campaignID: String, _ retries: [DelayedWork.Retry], reason: DeadReason = .invalidTask, error: String) async throws {
        let current = try await deliveries.existing(campaignID: campaignID, userIDs: retries.map(\.user_id))
        let waiting = retries.filter { current[$0.user_id] == DeliveryStatus.scheduled.rawValue }
        let rows = waiting.map { r in
            DeliveryStore.Row.dead(r.user_id, channel: r.channel, reason, attempts: r.attempts,
                                   messageID: MessageID.make(campaignID: campaignID, userID: r.user_id), lastError: error)
        }
        let letters = waiting.map { r in
            DeliveryStore.DeadLetter(userID: r.user_id, channel: r.channel, reason: reason.rawValue, error: error, attempts: r.attempts,
                                     payloadJSON: #"{"campaign_id":\#(JSONText.quote(campaignID)),"user_id":\#(JSONText.quote(r.user_id))}"#,
                                     messageID: MessageID.make(campaignID: campaignID, userID: r.user_id))
        }
        try await deliveries.record(campaignID: campaignID, rows: rows, checkpoint: nil, deadLetters: letters)
        try await campaigns.failUnowned(campaignID, error: error)
        logger.error("retries abandoned", metadata: ["campaign": "\(campaignID)", "count": "\(waiting.count)", "error": "\(error)"])
    }
}
