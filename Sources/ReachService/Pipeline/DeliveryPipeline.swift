import Foundation
import Logging
import ReachChannels
import ReachCore
import ReachPostgres
import ReachRedis

/// What happens to a message: this file, top to bottom.
///
/// Every send goes through `deliver` — a campaign page (`CampaignRunner`), a
/// trigger batch (`TriggerSender`), a retry, a deferral and a dead-letter
/// replay (`DelayScheduler`). They differ only in where their recipients and
/// plan come from. For each recipient, in this order:
///
/// 1. **settle** — a run held for good (cancelled, expired) settles everyone `skipped`;
/// 2. **plan** — route and render (`DeliveryPlanner`, pure); skipped when opted out or no address;
/// 3. **defer** — inside the user's quiet hours: `scheduled` until the window ends, no attempt spent;
/// 4. **cap** — over a frequency cap: `skipped/frequency_cap`;
/// 5. **claim** — the idempotency marks (one Lua call per key scope): fenced by the
///    lease's epoch; a user already marked sent (its sender died before recording
///    it) is recorded `sent`, not resent;
/// 6. **send** — `ChannelSenders`, asking the gate before every provider request;
/// 7. **decide** — `DeliveryDecision.decide`: sent, retry at T, deferred, dead;
/// 8. **follow up** — retry items queued, cap places given back; retried until
///    Redis takes them (a claim writes nothing, so an unsent message has nothing to release);
/// 9. **record** — the caller's write (rows, dead letters, a page's checkpoint),
///    retried until PostgreSQL takes it.
///
/// Steps 3–5 may fail (Redis or PostgreSQL away): then nothing was sent and
/// `deliver` throws, so the caller can simply call again (each step can be
/// repeated). From step 6 on nothing throws but a fenced or unstorable write:
/// a live process never forgets what a provider accepted.
struct DeliveryPipeline: Sendable {
    /// One recipient to deliver to.
    struct Send: Sendable {
        enum Attempt: Sendable {
            /// Route the recipient (a campaign page, a trigger's first send).
            case first
            /// Attempt `number` on the channel chosen before (a retry keeps its
            /// channel; a deferral or a replay repeats the attempts made so far + 1).
            case again(channel: String, number: Int)
        }

        var recipient: Recipient
        /// Renders the message; its campaign id names the row's campaign.
        var planner: DeliveryPlanner
        var attempt: Attempt = .first
        /// The campaign or rule honours quiet hours.
        var quietHours: Bool
        /// A trigger send's rule and event (JSON), carried by its retry items and dead letter.
        var trigger: String? = nil
        /// False when the user is gone from the users table since the first
        /// attempt: a further attempt then has no address to send to.
        var known = true

        var campaignID: String { planner.campaignID }
        var number: Int { if case .again(_, let n) = attempt { n } else { 1 } }
        var channel: String? { if case .again(let channel, _) = attempt { channel } else { nil } }
        var messageID: String { MessageID.make(campaignID: campaignID, userID: recipient.userID) }

        func plan() -> DeliveryPlanner.Plan {
            switch attempt {
            case .first: planner.plan(recipient)
            case .again(let channel, _): known ? planner.plan(recipient, on: channel) : .skip(reason: .noAddress, channel: channel)
            }
        }
    }

    /// What all sends of one call share.
    struct Plan: Sendable {
        var kind: DeliveryKind
        /// Where `reach_end_to_end_seconds` starts: the task's acceptance, the event's consumption.
        var acceptedAt: Date
        /// Asked before every provider request: may this run still send?
        var gate: SendGate = .open
        /// A campaign run's lease: its idempotency claims are fenced with it.
        var fence: Fence? = nil
        /// Where the campaign's idempotency keys live (spread over buckets when it was cut into shards).
        var spread: KeySpread = .single
    }

    /// Every recipient's row, for the caller to record.
    struct Outcome: Sendable {
        /// The rows, and at the same position the campaign each is of (a page's are all
        /// its campaign's; a trigger pass has one campaign per rule and event). Kept apart,
        /// so a page's write takes its rows as they are instead of a copy of each.
        var rows: [DeliveryStore.Row] = []
        var rowCampaignIDs: [String] = []
        var deadLetters: [(campaignID: String, letter: DeliveryStore.DeadLetter)] = []
        /// False when the gate held back users who got no row (paused, lease
        /// lost, shutting down): they stay unsent for whoever runs them next.
        var complete = true
    }

    let senders: ChannelSenders
    let registry: ChannelRegistry
    let infrastructure: Infrastructure
    let metrics: PipelineMetrics
    let logger: Logger
    /// Holds the idempotency claims of unfenced sends (triggers, retries).
    let owner: String

    init(infrastructure: Infrastructure, registry: ChannelRegistry, breakers: ChannelBreakers, pauses: PausedChannels,
         metrics: PipelineMetrics, logger: Logger, owner: String) {
        self.senders = ChannelSenders(infrastructure: infrastructure, registry: registry, breakers: breakers, pauses: pauses,
                                      metrics: metrics, logger: logger)
        (self.infrastructure, self.registry, self.metrics, self.logger, self.owner) = (infrastructure, registry, metrics, logger, owner)
    }

    var idempotency: IdempotencyStore { infrastructure.idempotency }
    var queue: DelayQueue { infrastructure.delayQueue }
    var quietHours: QuietHours? { infrastructure.quietHours }
    var frequencyCap: FrequencyCap { infrastructure.frequencyCap }

    /// Delivers `sends` and hands their rows to `record` (retried until it
    /// succeeds); returns what `record` returns.
    func deliver<R: Sendable>(_ sends: [Send], _ plan: Plan, record: (Outcome) async throws -> R) async throws -> R {
        var tally = Tally()
        // 1. Settle: a run held for good writes every user's row, nothing is sent.
        if case .hold(let hold) = plan.gate.check(), let reason = hold.skipReason {
            for send in sends { tally.skip(send, reason, channel: send.channel) }
            return try await finish(tally, record)
        }
        // 2. Plan. A page of 5 000 is milliseconds of rendering: it yields every `yieldEvery`
        // sends, so the API's requests (and other pages) get a thread in between.
        var attempts: [Attempt] = []
        attempts.reserveCapacity(sends.count)
        for index in sends.indices {
            if index > 0, index % Self.yieldEvery == 0 { await Task.yield() }
            switch sends[index].plan() {
            case .skip(let reason, let channel): tally.skip(sends[index], reason, channel: channel)
            case .send(let message): attempts.append(Attempt(send: sends[index], message: message))
            }
        }
        // 3–5. Before any request: any error here leaves nothing sent.
        attempts = try await deferQuietHours(attempts, &tally)
        attempts = try await applyCaps(attempts, &tally)
        attempts = try await claim(attempts, fence: plan.fence, spread: plan.spread, &tally)
        // 6. Send.
        let answers = await senders.send(attempts.map(\.message), gate: plan.gate, urgent: plan.kind == .event, spread: plan.spread)
        // 7. Decide.
        var followUp = FollowUp()
        let now = Date()
        for index in attempts.indices {
            if index > 0, index % Self.yieldEvery == 0 { await Task.yield() }
            decide(attempts[index], answers[index], now: now, &tally, &followUp)
        }
        // 8. Follow up. Retry items go in before their rows are written: a crash in
        // between leaves an item whose row is missing, which the retry skips.
        _ = try? await persist(logger, "retry items") { try await queue.schedule(followUp.retries) }
        if registry.hasCaps {
            // A message that will never be sent gives its place under the cap back.
            _ = try? await persist(logger, "frequency cap release") { try await frequencyCap.release(followUp.uncapped) }
        }
        metrics.endToEnd(kind: plan.kind, .seconds(max(0, Date().timeIntervalSince(plan.acceptedAt))), count: followUp.sent)
        // 9. Record.
        return try await finish(tally, record)
    }

    /// Sends planned or decided between two yields of the cooperative thread (about a millisecond).
    static let yieldEvery = 500

    /// A message on its way, with what the later steps need of the send it
    /// came from (not the send itself: its recipient and planner would be
    /// copied, retained and released with every attempt at every step).
    struct Attempt: Sendable {
        var message: OutboundMessage
        /// Which attempt this is (1: the first).
        var number: Int
        /// A trigger send's rule and event (JSON), for its retry items and dead letter.
        var trigger: String?
        /// The campaign or rule honours quiet hours; then the user's timezone says when they are.
        var quietHours: Bool
        var timezone: String?

        init(send: Send, message: OutboundMessage) {
            (self.message, number, trigger) = (message, send.number, send.trigger)
            (quietHours, timezone) = (send.quietHours, send.recipient.timezone)
        }
    }

    /// 3. Defer: inside the user's quiet hours, wait for the window's end without spending an attempt.
    private func deferQuietHours(_ attempts: [Attempt], _ tally: inout Tally) async throws -> [Attempt] {
        guard let quiet = quietHours else { return attempts }
        let now = Date()
        let ends = attempts.map { $0.quietHours ? quiet.deferral(now: now, timezone: $0.timezone) : nil }
        // Nearly always nobody is inside quiet hours: the attempts go on as they are, not copied.
        guard ends.contains(where: { $0 != nil }) else { return attempts }
        var kept: [Attempt] = []
        var deferred: [DelayQueue.NewItem] = []
        for (attempt, end) in zip(attempts, ends) {
            guard let end else {
                kept.append(attempt)
                continue
            }
            let m = attempt.message
            let spent = attempt.number - 1
            deferred.append(DelayedWork.Retry(m, attempts: spent, trigger: attempt.trigger).queueItem(dueMs: Epoch.ms(end)))
            tally.add(m.campaignID, .waiting(m.userID, channel: m.channel, .quietHours, attempts: spent, messageID: m.messageID),
                      count: .retried, channel: m.channel)
        }
        try await queue.schedule(deferred)
        return kept
    }

    /// 4. Cap: at most so many messages per user per rolling day (all channels, and per channel).
    private func applyCaps(_ attempts: [Attempt], _ tally: inout Tally) async throws -> [Attempt] {
        guard registry.hasCaps, !attempts.isEmpty else { return attempts }
        let admitted = try await frequencyCap.admit(
            attempts.map { ($0.message.userID, $0.message.channel, $0.message.messageID) },
            maxOverall: registry.capOverall, maxPerChannel: registry.capsPerChannel, nowMs: Epoch.ms())
        var kept: [Attempt] = []
        for (attempt, ok) in zip(attempts, admitted) {
            if ok { kept.append(attempt); continue }
            tally.skip(attempt, .frequencyCap)
        }
        return kept
    }

    /// 5. Claim: the (campaign, user) marks, fenced for a campaign run. A claim
    /// only reads the marks (and moves the fence), so this step may be repeated.
    private func claim(_ attempts: [Attempt], fence: Fence?, spread: KeySpread, _ tally: inout Tally) async throws -> [Attempt] {
        guard !attempts.isEmpty else { return [] }
        let keys = attempts.map { (spread.scope(campaignID: $0.message.campaignID, userID: $0.message.userID), $0.message.userID) }
        let claims = try await idempotency.claim(keys, owner: owner, fence: fence)
        guard claims.contains(.alreadySent) else { return attempts }
        var toSend: [Attempt] = []
        for (attempt, claim) in zip(attempts, claims) {
            guard claim == .alreadySent else { toSend.append(attempt); continue }
            // Sent by a sender that died before recording it: record, do not resend.
            let m = attempt.message
            tally.add(m.campaignID, .sent(m.userID, channel: m.channel, attempts: attempt.number, messageID: m.messageID),
                      count: nil, channel: m.channel)
        }
        return toSend
    }

    /// What the sends leave for Redis once they are answered.
    private struct FollowUp {
        var retries: [DelayQueue.NewItem] = []
        var uncapped: [(userID: String, channel: String, messageID: String)] = []
        var sent = 0
    }

    /// 7. Decide one message's fate from the provider's answer (or the gate's hold).
    private func decide(_ attempt: Attempt, _ dispatched: ChannelSenders.Dispatched, now: Date, _ tally: inout Tally,
                        _ followUp: inout FollowUp) {
        let m = attempt.message
        let number = attempt.number
        let outcome: SendOutcome
        switch dispatched {
        case .withheld(let hold):
            if let reason = hold.skipReason {
                tally.skip(attempt, reason)
            } else {
                tally.outcome.complete = false
            }
            return
        case .outcome(let answered):
            outcome = answered
        }
        let answer = ProviderAnswer(outcome)
        // SPEC §8 `failed`: a provider call that failed (the message is then `retried` or `dead` too).
        if answer.isFailedCall { tally.count(.failed, channel: m.channel, provider: outcome.provider) }
        let error = outcome.error ?? "provider call failed"
        switch DeliveryDecision.decide(answer, attempt: number, policy: registry.retryPolicy(m.channel)) {
        case .sent(let attempts, let providerRef):
            followUp.sent += 1
            tally.add(m.campaignID, .sent(m.userID, channel: m.channel, attempts: attempts, messageID: m.messageID, providerRef: providerRef,
                                          provider: outcome.provider),
                      count: .sent, channel: m.channel, provider: outcome.provider)
        case .wait(let reason, let after, let attempts):
            followUp.retries.append(DelayedWork.Retry(m, attempts: attempts, trigger: attempt.trigger)
                .queueItem(dueMs: Epoch.ms(now) + after.milliseconds))
            tally.add(m.campaignID, .waiting(m.userID, channel: m.channel, reason, attempts: attempts, messageID: m.messageID, lastError: error),
                      count: .retried, channel: m.channel, provider: outcome.provider)
        case .dead(let reason, let attempts):
            followUp.uncapped.append((m.userID, m.channel, m.messageID))
            tally.add(m.campaignID, .dead(m.userID, channel: m.channel, reason, attempts: attempts, messageID: m.messageID, lastError: error),
                      count: .dead, channel: m.channel, provider: outcome.provider)
            tally.outcome.deadLetters.append((m.campaignID, .init(
                userID: m.userID, channel: m.channel, reason: reason.rawValue, error: error, attempts: attempts,
                payloadJSON: Self.deadLetterPayload(m, trigger: attempt.trigger), messageID: m.messageID)))
        }
    }

    /// 9. Record: the caller's write, retried until durable; the counts go to the metrics once.
    private func finish<R: Sendable>(_ tally: Tally, _ record: (Outcome) async throws -> R) async throws -> R {
        for (key, n) in tally.counts { metrics.message(channel: key.channel, status: key.status, provider: key.provider, count: n) }
        return try await persist(logger, "delivery rows") { try await record(tally.outcome) }
    }

    /// Rows and metric counts as the steps produce them.
    private struct Tally {
        var outcome = Outcome()
        struct MetricKey: Equatable {
            let channel: String
            let provider: String?
            let status: MessageStatus
        }
        /// A handful of distinct keys per call: a list searched in place beats hashing two strings per message.
        var counts: [(key: MetricKey, n: Int)] = []

        mutating func add(_ campaignID: String, _ row: DeliveryStore.Row, count status: MessageStatus?, channel: String?,
                          provider: String? = nil) {
            outcome.rows.append(row)
            outcome.rowCampaignIDs.append(campaignID)
            if let status { count(status, channel: channel, provider: provider) }
        }

        mutating func skip(_ send: Send, _ reason: SkipReason, channel: String?) {
            add(send.campaignID, .skipped(send.recipient.userID, channel: channel, reason, attempts: send.number - 1, messageID: send.messageID),
                count: .skipped, channel: channel)
        }

        /// An attempt that ends without a request (over a cap, or its run held for good).
        mutating func skip(_ attempt: Attempt, _ reason: SkipReason) {
            let m = attempt.message
            add(m.campaignID, .skipped(m.userID, channel: m.channel, reason, attempts: attempt.number - 1, messageID: m.messageID),
                count: .skipped, channel: m.channel)
        }

        mutating func count(_ status: MessageStatus, channel: String?, provider: String? = nil) {
            let key = MetricKey(channel: channel ?? "none", provider: provider, status: status)
            if let i = counts.firstIndex(where: { $0.key == key }) { counts[i].n += 1 } else { counts.append((key, 1)) }
        }
    }

    /// A dead letter's `payload`: the message (address, and numbers and addresses rendered
    /// into title and body, masked: a replay renders afresh) and, for a
    /// trigger send, its `trigger` context (rule and event), so a replay can
    /// rebuild the send — a trigger send has no stored campaign to render from.
    static func deadLetterPayload(_ m: OutboundMessage, trigger: String?) -> String {
        let message = m.json(maskAddress: true, maskContent: true)
        guard let trigger, message.hasSuffix("}") else { return message }
        return String(message.dropLast()) + #","trigger":"# + trigger + "}"
    }
}

extension ProviderAnswer {
    /// The channel module's outcome as the decision reads it.
    init(_ outcome: SendOutcome) {
        switch outcome.status {
        case .sent: self = .accepted(providerRef: outcome.providerRef)
        case .retryable: self = .retryable(retryAfter: outcome.retryAfter)
        case .permanent: self = .rejected
        case .deferred: self = .deferred(outcome.isPaused ? .channelPaused : .circuitOpen, retryAfter: outcome.retryAfter)
        }
    }
}

/// What the pipeline asks before every provider request: may this run
/// still send? A campaign runner answers from its lease (renewed on its own
/// clock) and the campaign's state; the delay scheduler from its items' lease.
struct SendGate: Sendable {
    typealias Hold = SendVerdict.Hold
    typealias Verdict = SendVerdict

    let check: @Sendable () -> Verdict

    init(_ check: @escaping @Sendable () -> Verdict) { self.check = check }

    static let open = SendGate { .go }
}
