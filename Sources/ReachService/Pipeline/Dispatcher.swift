import Foundation
import Logging
import ReachChannels
import ReachCore
import ReachPostgres
import ReachRedis
import Synchronization

/// Sends a batch of messages and turns every outcome into a delivery row:
/// claims the idempotency keys (one Lua call), sends per channel in batches,
/// marks accepted batches in Redis at once, and applies each channel's retry
/// policy to failures: a retry goes into the delay queue (row `scheduled`),
/// a permanent or exhausted failure becomes `dead` plus a dead letter.
/// The caller writes the returned rows and dead letters in one transaction.
struct Dispatcher: Sendable {
    struct Attempt: Sendable {
        var message: OutboundMessage
        /// The number of this attempt, counting from 1.
        var number: Int
        /// The recipient's time zone, and whether the campaign honours quiet hours.
        var timezone: String? = nil
        var quietHours = false
        /// For trigger sends: the rule and event, so a retry can rebuild the message.
        var context: String? = nil
    }

    struct Result: Sendable {
        var rows: [DeliveryStore.Row] = []
        var deadLetters: [DeliveryStore.DeadLetter] = []
    }

    /// What a retry item in the delay queue carries.
    struct RetryPayload: Codable, Sendable {
        var kind = "retry"
        var campaign_id: String
        var user_id: String
        var channel: String
        var attempts: Int
        var trigger: String? = nil

        /// The delay-queue item for this retry, due at `dueMs` (ms since the epoch).
        func queueItem(dueMs: Int64) throws -> (id: String, payload: String, dueMs: Int64) {
            (Dispatcher.retryID(campaignID: campaign_id, userID: user_id),
             String(decoding: try JSONEncoder().encode(self), as: UTF8.self), dueMs)
        }
    }


    let registry: ChannelRegistry
    let breakers: ChannelBreakers
    let idempotency: IdempotencyStore
    let queue: DelayQueue
    let quietHours: QuietHours?
    let rateLimiter: RateLimiter
    let frequencyCap: FrequencyCap
    let metrics: PipelineMetrics
    let logger: Logger
    let owner: String

    /// The dispatcher of this process's pipeline: queue, limits and caps from `infrastructure`.
    init(infrastructure: Infrastructure, registry: ChannelRegistry, breakers: ChannelBreakers, metrics: PipelineMetrics,
         logger: Logger, owner: String) {
        self.init(registry: registry, breakers: breakers, idempotency: infrastructure.idempotency, queue: infrastructure.delayQueue,
                  quietHours: infrastructure.quietHours, rateLimiter: infrastructure.rateLimiter, frequencyCap: infrastructure.frequencyCap,
                  metrics: metrics, logger: logger, owner: owner)
    }

    init(registry: ChannelRegistry, breakers: ChannelBreakers, idempotency: IdempotencyStore, queue: DelayQueue, quietHours: QuietHours?,
         rateLimiter: RateLimiter, frequencyCap: FrequencyCap, metrics: PipelineMetrics, logger: Logger, owner: String) {
        self.registry = registry
        self.breakers = breakers
        self.idempotency = idempotency
        self.queue = queue
        self.quietHours = quietHours
        self.rateLimiter = rateLimiter
        self.frequencyCap = frequencyCap
        self.metrics = metrics
        self.logger = logger
        self.owner = owner
    }

    static func retryID(campaignID: String, userID: String) -> String { "retry:\(campaignID):\(userID)" }

    /// Delivers attempts of any campaigns (each message carries its campaign id).
    func deliver(_ all: [Attempt], acceptedAt: Date, kind: String = "task") async throws -> Result {
        var result = Result()
        guard !all.isEmpty else { return result }
        // Counted per (channel, status) and reported once per call, not per message.
        var counts: [String: [String: Int]] = [:]
        defer {
            for (channel, byStatus) in counts {
                for (status, n) in byStatus { metrics.message(channel: channel, status: status, count: n) }
            }
        }
        // Quiet hours: defer to the end of the user's window, without spending an attempt.
        var attempts: [Attempt] = []
        var deferred: [(id: String, payload: String, dueMs: Int64)] = []
        let wallNow = Date()
        for attempt in all {
            guard attempt.quietHours, let quiet = quietHours, let end = quiet.deferral(now: wallNow, timezone: attempt.timezone) else {
                attempts.append(attempt)
                continue
            }
            let m = attempt.message
            deferred.append(try RetryPayload(campaign_id: m.campaignID, user_id: m.userID, channel: m.channel, attempts: attempt.number - 1,
                                             trigger: attempt.context).queueItem(dueMs: Epoch.ms(end)))
            result.rows.append(.init(userID: m.userID, channel: m.channel, status: "scheduled", reason: "quiet_hours",
                                     attempts: attempt.number - 1, messageID: m.messageID))
            counts[m.channel, default: [:]]["retried", default: 0] += 1
        }
        try await queue.schedule(deferred)
        if registry.hasCaps, !attempts.isEmpty {
            let admitted = try await frequencyCap.admit(
                attempts.map { ($0.message.userID, $0.message.channel, $0.message.messageID) },
                maxOverall: registry.capOverall, maxPerChannel: registry.capsPerChannel, nowMs: Epoch.ms(wallNow))
            var kept: [Attempt] = []
            for (attempt, ok) in zip(attempts, admitted) {
                if ok { kept.append(attempt); continue }
                let m = attempt.message
                result.rows.append(.init(userID: m.userID, channel: m.channel, status: "skipped", reason: "frequency_cap",
                                         attempts: attempt.number - 1, messageID: m.messageID))
                counts[m.channel, default: [:]]["skipped", default: 0] += 1
            }
            attempts = kept
        }
        guard !attempts.isEmpty else { return result }
        let claims = try await idempotency.claim(attempts.map { ($0.message.campaignID, $0.message.userID) }, owner: owner)
        var toSend: [Attempt] = []
        for (attempt, claim) in zip(attempts, claims) {
            if claim == .alreadySent {
                // Sent by a runner that died before recording it: record, do not resend.
                result.rows.append(.init(userID: attempt.message.userID, channel: attempt.message.channel, status: "sent",
                                         attempts: attempt.number, messageID: attempt.message.messageID))
            } else {
                toSend.append(attempt)
            }
        }
        let outcomes = await dispatch(toSend.map(\.message))
        var retries: [(id: String, payload: String, dueMs: Int64)] = []
        var released: [(campaignID: String, userID: String)] = []
        var dead: [OutboundMessage] = []
        var sentCount = 0
        let now = Date()
        for attempt in toSend {
            let m = attempt.message
            let outcome = outcomes[m.messageID] ?? .retryable("no outcome")
            if outcome.status == .sent {
                sentCount += 1
                result.rows.append(.init(userID: m.userID, channel: m.channel, status: "sent", attempts: attempt.number,
                                         messageID: m.messageID, providerRef: outcome.providerRef))
                counts[m.channel, default: [:]]["sent", default: 0] += 1
                continue
            }
            released.append((m.campaignID, m.userID))
            let error = outcome.error ?? "failed"
            // A deferral (open breaker) was no attempt: the next one keeps this number.
            let decision: RetryPolicy.Decision = outcome.status == .deferred
                ? .retry(after: outcome.retryAfter ?? .seconds(1))
                : registry.retryPolicy(m.channel).decide(attempts: attempt.number, retryable: outcome.status == .retryable,
                                                         retryAfter: outcome.retryAfter)
            let attemptsMade = outcome.status == .deferred ? attempt.number - 1 : attempt.number
            switch decision {
            case .retry(let after):
                retries.append(try RetryPayload(campaign_id: m.campaignID, user_id: m.userID, channel: m.channel, attempts: attemptsMade,
                                                trigger: attempt.context).queueItem(dueMs: Epoch.ms(now) + after.milliseconds))
                result.rows.append(.init(userID: m.userID, channel: m.channel, status: "scheduled",
                                         reason: outcome.status == .deferred ? "circuit_open" : "retry",
                                         attempts: attemptsMade, messageID: m.messageID, lastError: error))
                counts[m.channel, default: [:]]["retried", default: 0] += 1
            case .dead(let reason):
                result.rows.append(.init(userID: m.userID, channel: m.channel, status: "dead", reason: reason,
                                         attempts: attempt.number, messageID: m.messageID, lastError: error))
                result.deadLetters.append(.init(userID: m.userID, channel: m.channel, reason: reason, error: error,
                                                attempts: attempt.number, payloadJSON: m.json(maskAddress: true), messageID: m.messageID))
                dead.append(m)
                counts[m.channel, default: [:]]["dead", default: 0] += 1
            }
        }
        // Retries are queued before their rows are written: a crash in between
        // leaves a queue item whose row is missing, which the retry worker skips.
        try await queue.schedule(retries)
        try await idempotency.release(released, owner: owner)
        if registry.hasCaps {
            // A message that will never be sent gives its place under the cap back.
            try await frequencyCap.release(dead.map { ($0.userID, $0.channel, $0.messageID) })
        }
        metrics.endToEnd(kind: kind, .seconds(max(0, Date().timeIntervalSince(acceptedAt))), count: sentCount)
        return result
    }

    /// Sends per channel in batches of its `batch_size`, at most `concurrency`
    /// batches in flight per channel, all channels at once. Each accepted batch
    /// is marked sent in Redis as soon as the provider answers, so a crash
    /// resends at most the batches that were in flight.
    func dispatch(_ messages: [OutboundMessage]) async -> [String: SendOutcome] {
        guard !messages.isEmpty else { return [:] }
        let metrics = self.metrics
        let idempotency = self.idempotency
        let logger = self.logger
        let breakers = self.breakers
        let rateLimiter = self.rateLimiter
        let rates = registry.rates
        return await withTaskGroup(of: [(String, SendOutcome)].self) { group in
            for (name, list) in Dictionary(grouping: messages, by: \.channel) {
                guard let channel = registry.channels[name] else {
                    group.addTask { list.map { ($0.messageID, .permanent("channel \(name) is not configured")) } }
                    continue
                }
                let batches = stride(from: 0, to: list.count, by: channel.batchSize).map {
                    Array(list[$0..<min($0 + channel.batchSize, list.count)])
                }
                let queue = BatchQueue(batches)
                for _ in 0..<min(channel.concurrency, batches.count) {
                    group.addTask {
                        var results: [(String, SendOutcome)] = []
                        while let batch = queue.take() {
                            let gate = breakers.gate(name)
                            if case .wait(let wait) = gate {
                                // Open breaker: defer through the delay queue, do not fail.
                                for message in batch { results.append((message.messageID, .deferred(after: wait))) }
                                continue
                            }
                            if let rate = rates[name] {
                                // Cluster-wide rate limit: wait for this batch's tokens. If Redis
                                // cannot be asked, defer the batch rather than exceed the limit.
                                do {
                                    let wait = try await rateLimiter.acquire(
                                        name, count: batch.count, ratePerSecond: rate,
                                        nowMs: Epoch.ms())
                                    if wait > .zero { try await Task.sleep(for: wait) }
                                } catch {
                                    logger.warning("rate limiter unavailable; batch deferred", metadata: ["error": "\(error)"])
                                    for message in batch { results.append((message.messageID, .deferred(after: .seconds(1)))) }
                                    continue
                                }
                            }
                            let start = ContinuousClock.now
                            var outcomes = await channel.send(batch)
                            metrics.sendDuration(channel: name, ContinuousClock.now - start)
                            let healthy = outcomes.contains { $0.status == .sent || $0.status == .permanent }
                            breakers.record(name, success: healthy)
                            if case .probe(let coolDown) = gate, !healthy {
                                // The provider is still down: that says nothing about these messages.
                                outcomes = outcomes.map { $0.status == .retryable ? .deferred(after: coolDown) : $0 }
                            }
                            let accepted = zip(batch, outcomes).filter { $0.1.status == .sent }.map { ($0.0.campaignID, $0.0.userID) }
                            do {
                                try await idempotency.markSent(accepted)
                            } catch {
                                // The delivery rows still record the send; only the crash window widens.
                                logger.warning("could not mark sends in Redis", metadata: ["error": "\(error)"])
                            }
                            for (message, outcome) in zip(batch, outcomes) { results.append((message.messageID, outcome)) }
                        }
                        return results
                    }
                }
            }
            var all: [String: SendOutcome] = [:]
            for await part in group { for (id, outcome) in part { all[id] = outcome } }
            return all
        }
    }
}

/// Batches handed out to a channel's workers one at a time.
final class BatchQueue: Sendable {
    private let state: Mutex<(batches: [[OutboundMessage]], next: Int)>

    init(_ batches: [[OutboundMessage]]) { state = Mutex((batches, 0)) }

    func take() -> [OutboundMessage]? {
        state.withLock { s in
            guard s.next < s.batches.count else { return nil }
            defer { s.next += 1 }
            return s.batches[s.next]
        }
    }
}
