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
        /// False when the gate held back users who got no row (they stay unsent).
        var complete = true
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
            (Dispatcher.retryID(campaignID: campaign_id, userID: user_id), DelayedWork.retry(self).payload, dueMs)
        }
    }


    let registry: ChannelRegistry
    let breakers: ChannelBreakers
    let pauses: PausedChannels
    let idempotency: IdempotencyStore
    let queue: DelayQueue
    let quietHours: QuietHours?
    let rateLimiter: RateLimiter
    let frequencyCap: FrequencyCap
    let metrics: PipelineMetrics
    let logger: Logger
    let owner: String

    /// The dispatcher of this process's pipeline: queue, limits and caps from `infrastructure`.
    init(infrastructure: Infrastructure, registry: ChannelRegistry, breakers: ChannelBreakers, pauses: PausedChannels, metrics: PipelineMetrics,
         logger: Logger, owner: String) {
        self.init(registry: registry, breakers: breakers, pauses: pauses, idempotency: infrastructure.idempotency, queue: infrastructure.delayQueue,
                  quietHours: infrastructure.quietHours, rateLimiter: infrastructure.rateLimiter, frequencyCap: infrastructure.frequencyCap,
                  metrics: metrics, logger: logger, owner: owner)
    }

    init(registry: ChannelRegistry, breakers: ChannelBreakers, pauses: PausedChannels, idempotency: IdempotencyStore, queue: DelayQueue,
         quietHours: QuietHours?, rateLimiter: RateLimiter, frequencyCap: FrequencyCap, metrics: PipelineMetrics, logger: Logger, owner: String) {
        self.registry = registry
        self.breakers = breakers
        self.pauses = pauses
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

    /// A dead letter's `payload`: the message (address masked) and, for a
    /// trigger send, its `trigger` context (rule and event), so a replay can
    /// rebuild the send — a trigger send has no stored campaign to render from.
    static func deadLetterPayload(_ m: OutboundMessage, trigger: String?) -> String {
        let message = m.json(maskAddress: true)
        guard let trigger, message.hasSuffix("}") else { return message }
        return String(message.dropLast()) + #","trigger":"# + trigger + "}"
    }

    /// What `prepare` decided before any provider request: rows settled
    /// already (deferred to the end of quiet hours, over a frequency cap, sent
    /// by a runner that died before recording it) and the attempts to send,
    /// each claimed in Redis.
    struct Prepared: Sendable {
        var rows: [DeliveryStore.Row] = []
        var toSend: [Attempt] = []
        /// The value the idempotency claims hold (the fence token for a campaign run).
        var claimValue: String
        var counts: [String: [String: Int]] = [:]
    }

    /// Delivers attempts of any campaigns (each message carries its campaign id):
    /// `prepare`, then `send`. Used where the caller retries the whole call
    /// on an error before sending (trigger sends, retries).
    func deliver(_ all: [Attempt], acceptedAt: Date, kind: String = "task", gate: SendGate = .open) async throws -> Result {
        let prepared = try await prepare(all)
        return await send(prepared, acceptedAt: acceptedAt, kind: kind, gate: gate)
    }

    /// Everything before the first provider request: quiet-hours deferrals,
    /// frequency caps, idempotency claims. Each step may be repeated after an
    /// error (a deferral replaces its queue item, a counted message is not
    /// counted twice, a claim by the same holder is taken again), so the
    /// caller retries this on any error. With a `fence` the claims are fenced:
    /// `FencedOut` once another runner holds the campaign.
    func prepare(_ all: [Attempt], fence: Fence? = nil) async throws -> Prepared {
        var prepared = Prepared(claimValue: fence?.token ?? owner)
        guard !all.isEmpty else { return prepared }
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
            prepared.rows.append(.waiting(m.userID, channel: m.channel, .quietHours, attempts: attempt.number - 1, messageID: m.messageID))
            prepared.counts[m.channel, default: [:]]["retried", default: 0] += 1
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
                prepared.rows.append(.skipped(m.userID, channel: m.channel, .frequencyCap, attempts: attempt.number - 1, messageID: m.messageID))
                prepared.counts[m.channel, default: [:]]["skipped", default: 0] += 1
            }
            attempts = kept
        }
        guard !attempts.isEmpty else { return prepared }
        let claims = try await idempotency.claim(attempts.map { ($0.message.campaignID, $0.message.userID) }, owner: owner, fence: fence)
        for (attempt, claim) in zip(attempts, claims) {
            if claim == .alreadySent {
                // Sent by a runner that died before recording it: record, do not resend.
                prepared.rows.append(.sent(attempt.message.userID, channel: attempt.message.channel, attempts: attempt.number,
                                           messageID: attempt.message.messageID))
            } else {
                prepared.toSend.append(attempt)
            }
        }
        return prepared
    }

    /// Sends what `prepare` claimed and turns every outcome into a row. Never
    /// throws: the writes that follow an answer (sent marks, retry items,
    /// released claims) are retried until Redis takes them, so a live process
    /// never forgets what a provider accepted. The gate is asked before every
    /// provider request; what it holds back is not sent: its claims are
    /// released and it gets a `skipped` row (cancelled, expired) or none at
    /// all (paused, lease lost, shutting down: `result.complete` is false and
    /// the users stay unsent for whoever runs the campaign next).
    func send(_ prepared: Prepared, acceptedAt: Date, kind: String = "task", gate: SendGate = .open) async -> Result {
        var result = Result()
        result.rows = prepared.rows
        // Counted per (channel, status) and reported once per call, not per message.
        var counts = prepared.counts
        defer {
            for (channel, byStatus) in counts {
                for (status, n) in byStatus { metrics.message(channel: channel, status: status, count: n) }
            }
        }
        let toSend = prepared.toSend
        guard !toSend.isEmpty else { return result }
        let outcomes = await dispatch(toSend.map(\.message), gate: gate)
        var retries: [(id: String, payload: String, dueMs: Int64)] = []
        var released: [(campaignID: String, userID: String)] = []
        var dead: [OutboundMessage] = []
        var sentCount = 0
        let now = Date()
        for attempt in toSend {
            let m = attempt.message
            let dispatched = outcomes[m.messageID] ?? .outcome(.retryable("no outcome"))
            let outcome: SendOutcome
            switch dispatched {
            case .withheld(let hold):
                released.append((m.campaignID, m.userID))
                if let reason = hold.skipReason {
                    result.rows.append(.skipped(m.userID, channel: m.channel, reason, attempts: attempt.number - 1, messageID: m.messageID))
                    counts[m.channel, default: [:]]["skipped", default: 0] += 1
                } else {
                    result.complete = false
                }
                continue
            case .outcome(let o):
                outcome = o
            }
            let answer = Self.answer(outcome)
            // SPEC §8 `failed`: a provider call that failed, retryable or not, counted once per message
            // per failed attempt (it is then `retried` or `dead` too). A deferral was no call.
            if answer.isFailedCall { counts[m.channel, default: [:]]["failed", default: 0] += 1 }
            let decision = DeliveryDecision.decide(answer, attempt: attempt.number, policy: registry.retryPolicy(m.channel))
            let error = outcome.error ?? "failed"
            switch decision {
            case .sent(let attempts, let providerRef):
                sentCount += 1
                result.rows.append(.sent(m.userID, channel: m.channel, attempts: attempts, messageID: m.messageID, providerRef: providerRef))
                counts[m.channel, default: [:]]["sent", default: 0] += 1
            case .wait(let reason, let after, let attempts):
                released.append((m.campaignID, m.userID))
                if let item = try? RetryPayload(campaign_id: m.campaignID, user_id: m.userID, channel: m.channel, attempts: attempts,
                                                trigger: attempt.context).queueItem(dueMs: Epoch.ms(now) + after.milliseconds) {
                    retries.append(item)
                }
                result.rows.append(.waiting(m.userID, channel: m.channel, reason, attempts: attempts, messageID: m.messageID, lastError: error))
                counts[m.channel, default: [:]]["retried", default: 0] += 1
            case .dead(let reason, let attempts):
                released.append((m.campaignID, m.userID))
                result.rows.append(.dead(m.userID, channel: m.channel, reason, attempts: attempts, messageID: m.messageID, lastError: error))
                result.deadLetters.append(.init(userID: m.userID, channel: m.channel, reason: reason.rawValue, error: error, attempts: attempts,
                                                payloadJSON: Self.deadLetterPayload(m, trigger: attempt.context), messageID: m.messageID))
                dead.append(m)
                counts[m.channel, default: [:]]["dead", default: 0] += 1
            }
        }
        // Retries are queued before their rows are written: a crash in between
        // leaves a queue item whose row is missing, which the retry worker skips.
        _ = try? await persist(logger, "retry items") { try await queue.schedule(retries) }
        let claimValue = prepared.claimValue
        _ = try? await persist(logger, "claim release") { try await idempotency.release(released, owner: claimValue) }
        if registry.hasCaps {
            // A message that will never be sent gives its place under the cap back.
            _ = try? await persist(logger, "frequency cap release") { try await frequencyCap.release(dead.map { ($0.userID, $0.channel, $0.messageID) }) }
        }
        metrics.endToEnd(kind: kind, .seconds(max(0, Date().timeIntervalSince(acceptedAt))), count: sentCount)
        return result
    }

    /// The channel module's outcome as the decision reads it.
    static func answer(_ outcome: SendOutcome) -> ProviderAnswer {
        switch outcome.status {
        case .sent: .accepted(providerRef: outcome.providerRef)
        case .retryable: .retryable(retryAfter: outcome.retryAfter)
        case .permanent: .rejected
        case .deferred: .deferred(outcome.isPaused ? .channelPaused : .circuitOpen, retryAfter: outcome.retryAfter)
        }
    }

    /// A message's fate in `dispatch`: the provider's answer, or held back by the gate.
    enum Dispatched: Sendable {
        case outcome(SendOutcome)
        case withheld(SendGate.Hold)
    }

    /// Sends per channel in batches of its `batch_size`, at most `concurrency`
    /// batches in flight per channel, all channels at once. The gate is asked
    /// before every request (and while a batch waits out rate-limit debt, which
    /// it gives back when held). A request on the wire is never cancelled: its
    /// answer is kept. Each accepted batch is marked sent in Redis as soon as
    /// the provider answers (retried until Redis takes it), so a crash resends
    /// at most the batches that were in flight.
    func dispatch(_ messages: [OutboundMessage], gate: SendGate = .open) async -> [String: Dispatched] {
        guard !messages.isEmpty else { return [:] }
        let metrics = self.metrics
        let idempotency = self.idempotency
        let logger = self.logger
        let breakers = self.breakers
        let pauses = self.pauses
        let rateLimiter = self.rateLimiter
        let rates = registry.rates
        return await withTaskGroup(of: [(String, Dispatched)].self) { group in
            for (name, list) in Dictionary(grouping: messages, by: \.channel) {
                guard let channel = registry.channels[name] else {
                    group.addTask { list.map { ($0.messageID, .outcome(.permanent("channel \(name) is not configured"))) } }
                    continue
                }
                let policy = registry.policy(name)
                let batches = stride(from: 0, to: list.count, by: policy.batchSize).map {
                    Array(list[$0..<min($0 + policy.batchSize, list.count)])
                }
                let queue = BatchQueue(batches)
                for _ in 0..<min(policy.concurrency, batches.count) {
                    group.addTask {
                        var results: [(String, Dispatched)] = []
                        func hold(_ batch: [OutboundMessage], _ reason: SendGate.Hold) {
                            for message in batch { results.append((message.messageID, .withheld(reason))) }
                        }
                        func deferPaused(_ batch: [OutboundMessage]) {
                            // Paused cluster-wide: deferred through the delay queue like an open
                            // breaker (no attempt spent, claim released, row `scheduled`).
                            for message in batch { results.append((message.messageID, .outcome(.paused(after: PausedChannels.deferral)))) }
                        }
                        batches: while let batch = queue.take() {
                            if case .hold(let reason) = gate.check() { hold(batch, reason); continue }
                            if await pauses.isPaused(name) { deferPaused(batch); continue }
                            let breaker = breakers.gate(name)
                            if case .wait(let wait) = breaker {
                                // Open breaker: defer through the delay queue, do not fail.
                                for message in batch { results.append((message.messageID, .outcome(.deferred(after: wait)))) }
                                continue
                            }
                            if let rate = rates[name] {
                                // Cluster-wide rate limit: take this batch's tokens, then wait out
                                // any debt in short steps, asking the gate at each; a held batch gives
                                // its tokens back. Redis unreachable: wait for it rather than exceed the limit.
                                var wait = Duration.zero
                                var failures = 0
                                while true {
                                    do {
                                        wait = try await rateLimiter.acquire(name, count: batch.count, ratePerSecond: rate, nowMs: Epoch.ms())
                                        break
                                    } catch {
                                        failures += 1
                                        if failures == 1 { logger.warning("rate limiter unavailable; waiting", metadata: ["error": "\(error)"]) }
                                        try? await Task.sleep(for: .milliseconds(min(1_000, 100 * failures)))
                                        if case .hold(let reason) = gate.check() { hold(batch, reason); continue batches }
                                    }
                                }
                                let until = ContinuousClock.now + wait
                                while ContinuousClock.now < until {
                                    try? await Task.sleep(for: min(.milliseconds(100), until - ContinuousClock.now))
                                    if case .hold(let reason) = gate.check() {
                                        try? await rateLimiter.refund(name, count: batch.count, ratePerSecond: rate)
                                        hold(batch, reason)
                                        continue batches
                                    }
                                }
                                if case .hold(let reason) = gate.check() {
                                    try? await rateLimiter.refund(name, count: batch.count, ratePerSecond: rate)
                                    hold(batch, reason)
                                    continue
                                }
                                if wait > .zero, await pauses.isPaused(name) {
                                    // Paused while this batch waited out the debt.
                                    try? await rateLimiter.refund(name, count: batch.count, ratePerSecond: rate)
                                    deferPaused(batch)
                                    continue
                                }
                            }
                            let start = ContinuousClock.now
                            // Not cancellable from here on: an accepted request must come back as accepted.
                            var outcomes = await channel.send(batch)
                            metrics.sendDuration(channel: name, ContinuousClock.now - start)
                            let healthy = outcomes.contains { $0.status == .sent || $0.status == .permanent }
                            breakers.record(name, success: healthy)
                            if case .probe(let coolDown) = breaker, !healthy {
                                // The provider is still down: that says nothing about these messages.
                                outcomes = outcomes.map { $0.status == .retryable ? .deferred(after: coolDown) : $0 }
                            }
                            let accepted = zip(batch, outcomes).filter { $0.1.status == .sent }.map { ($0.0.campaignID, $0.0.userID) }
                            _ = try? await persist(logger, "sent marks") { try await idempotency.markSent(accepted) }
                            for (message, outcome) in zip(batch, outcomes) { results.append((message.messageID, .outcome(outcome))) }
                        }
                        return results
                    }
                }
            }
            var all: [String: Dispatched] = [:]
            for await part in group { for (id, outcome) in part { all[id] = outcome } }
            return all
        }
    }
}

/// What the dispatcher asks before every provider request: may this run
/// still send? A campaign runner answers from its lease (renewed on its own
/// clock) and the campaign's state; the delay scheduler from its items' lease.
struct SendGate: Sendable {
    typealias Hold = SendVerdict.Hold
    typealias Verdict = SendVerdict

    let check: @Sendable () -> Verdict

    init(_ check: @escaping @Sendable () -> Verdict) { self.check = check }

    static let open = SendGate { .go }
}
