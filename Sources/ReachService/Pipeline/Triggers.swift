import Foundation
import Logging
import ReachCore
import ReachKafka
import ReachPostgres
import ServiceLifecycle
import Synchronization

/// The enabled rules of `reach.triggers`, re-read every `refresh` so plain-SQL
/// changes take effect within 5 s. A rule that does not validate is logged and left out.
public final class TriggerRules: Sendable {
    private let rules = Mutex<(byEvent: [String: [TriggerRule]], byID: [String: TriggerRule], loadedAt: ContinuousClock.Instant?)>(([:], [:], nil))
    let postgres: PostgresClient
    let channels: Set<String>
    let logger: Logger
    let refresh: Duration

    public init(postgres: PostgresClient, channels: Set<String>, logger: Logger, refresh: Duration = .seconds(2)) {
        self.postgres = postgres
        self.channels = channels
        self.logger = logger
        self.refresh = refresh
    }

    public func reload() async throws {
        var byEvent: [String: [TriggerRule]] = [:]
        var byID: [String: TriggerRule] = [:]
        for row in try await TriggerStore(client: postgres).enabled() {
            do {
                let rule = try TriggerRule(id: row.id, event: row.event, channelsJSON: row.channelsJSON, fallbackJSON: row.fallbackJSON,
                                           templateJSON: row.templateJSON, delaySeconds: row.delaySeconds, quietHours: row.quietHours,
                                           channels: channels)
                byEvent[rule.event, default: []].append(rule)
                byID[rule.id] = rule
            } catch {
                logger.error("trigger rule ignored", metadata: ["rule": "\(row.id)", "error": "\(error)"])
            }
        }
        rules.withLock { $0 = (byEvent, byID, .now) }
    }

    func fresh() async throws {
        let loadedAt = rules.withLock { $0.loadedAt }
        if loadedAt.map({ ContinuousClock.now - $0 >= refresh }) ?? true { try await reload() }
    }

    public func rules(for event: String) async throws -> [TriggerRule] {
        try await fresh()
        return rules.withLock { $0.byEvent[event] ?? [] }
    }

    public func rule(id: String) async throws -> TriggerRule? {
        try await fresh()
        return rules.withLock { $0.byID[id] }
    }

    /// The enabled rule whose sends carry `campaignID` (`t:<rule>:<event_id>`),
    /// from the rules as last loaded. A rule id may itself hold a `:`, so the
    /// longest id that fits wins.
    func rule(forCampaignID campaignID: String) -> TriggerRule? {
        rules.withLock { r in
            r.byID.values.filter { campaignID.hasPrefix("t:\($0.id):") }.max { $0.id.count < $1.id.count }
        }
    }
}

final class PlannerCache: Sendable {
    let entries = Mutex<[String: (rule: TriggerRule, planner: DeliveryPlanner)]>([:])
}

/// Sends one rule's message for one event (now, from a delayed queue item, or as a retry).
struct TriggerSender: Sendable {
    struct Delayed: Codable, Sendable {
        var kind = "trigger"
        var rule_id: String
        var event: String
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
                rows.append((campaignID, .init(userID: event.userID, channel: channel, status: "skipped", reason: reason, attempts: 0,
                                               messageID: MessageID.make(campaignID: campaignID, userID: event.userID))))
                metrics.message(channel: channel ?? "none", status: "skipped")
            case .send(let message):
                let context = String(decoding: try JSONEncoder().encode(Delayed(rule_id: rule.id, event: event.json)), as: UTF8.self)
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
        guard try await deliveries.existing(campaignID: campaignID, userIDs: [event.userID])[event.userID] == "scheduled" else { return }
        let planner = try planner(for: rule, event: event)
        let recipient = try await SegmentSource(client: infrastructure.postgres).page(.userIDs([event.userID]), after: nil, limit: 1).first
            ?? Recipient(userID: event.userID)
        var rows: [DeliveryStore.Row] = []
        var attempts: [Dispatcher.Attempt] = []
        if !recipient.isOptedOut(of: channel), let message = planner.message(for: recipient, channel: channel) {
            let context = String(decoding: try JSONEncoder().encode(Delayed(rule_id: rule.id, event: event.json)), as: UTF8.self)
            attempts.append(.init(message: message, number: attempt, timezone: recipient.timezone, quietHours: rule.quietHours, context: context))
        } else {
            rows.append(.init(userID: event.userID, channel: channel, status: "skipped",
                              reason: recipient.isOptedOut(of: channel) ? "opted_out" : "no_address", attempts: attempt - 1,
                              messageID: MessageID.make(campaignID: campaignID, userID: event.userID)))
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

/// Consumes `reach.events`: every enabled rule for the event sends one message
/// to the user, now or after the rule's delay (through the delay queue). The
/// offset is committed once every rule's outcome is durable.
public struct TriggerIntake: Service {
    let infrastructure: Infrastructure
    let rules: TriggerRules
    let sender: TriggerSender
    let metrics: PipelineMetrics
    let logger: Logger

    init(infrastructure: Infrastructure, rules: TriggerRules, sender: TriggerSender, metrics: PipelineMetrics, logger: Logger) {
        self.infrastructure = infrastructure
        self.rules = rules
        self.sender = sender
        self.metrics = metrics
        self.logger = logger
    }

    public func run() async throws {
        let topic = infrastructure.configuration.kafka.topics.events
        let consumer = try infrastructure.makeConsumer(topics: [topic], groupSuffix: Infrastructure.eventsGroupSuffix, logger: logger)
        let rejects = InputDeadLetters(infrastructure: infrastructure, metrics: metrics, logger: logger)
        do {
            for try await batch in consumer.batches(max: 256).cancelOnGracefulShutdown() {
                // The events' end-to-end time starts here, before rules, recipients and retries.
                guard try await handle(batch, rejects, consumedAt: Date()) else { break }
                var next: [TopicPartition: Int64] = [:]
                for m in batch { next[m.topicPartition] = max(next[m.topicPartition] ?? 0, m.offset + 1) }
                guard try await untilDone(logger, { try await consumer.commit(next) }) else { break }
            }
        } catch {
            await consumer.close()
            throw error
        }
        await consumer.close()
    }

    /// Handles what the consumer had ready, together: invalid events are dead
    /// letters, delayed rules go into the delay queue, and every immediate
    /// (rule, event) send of the batch goes out through one `sendFirst` (a
    /// redelivered or repeated event finds its row and sends nothing).
    /// Retried until durable; false when shutdown came first (nothing of the
    /// batch is committed then). `consumedAt`: when the batch was read.
    func handle(_ batch: [KafkaMessage], _ rejects: InputDeadLetters, consumedAt: Date = Date()) async throws -> Bool {
        typealias Delayed = (id: String, payload: String, dueMs: Int64)
        var work: [(message: KafkaMessage, immediate: [(rule: TriggerRule, event: TriggerEvent)], delayed: [Delayed])] = []
        var seen: Set<String> = []
        for message in batch {
            let event: TriggerEvent
            do {
                event = try TriggerEvent.parse(message.value)
            } catch let error as ValidationError {
                guard try await untilDone(logger, { try await rejects.record(message, error) }) else { return false }
                continue
            }
            var rules: [TriggerRule] = []
            guard try await untilDone(logger, { rules = try await self.rules.rules(for: event.event) }) else { return false }
            var immediate: [(rule: TriggerRule, event: TriggerEvent)] = []
            var delayed: [Delayed] = []
            for rule in rules where seen.insert(rule.campaignID(for: event)).inserted {
                if rule.delaySeconds > 0 {
                    let payload = TriggerSender.Delayed(rule_id: rule.id, event: event.json)
                    let due = Epoch.ms() + Int64(rule.delaySeconds) * 1000
                    delayed.append((TriggerSender.delayedID(rule.campaignID(for: event)),
                                    String(decoding: try JSONEncoder().encode(payload), as: UTF8.self), due))
                } else {
                    immediate.append((rule, event))
                }
            }
            work.append((message, immediate, delayed))
        }
        // The whole batch at once; if PostgreSQL refuses its data (validation should
        // have caught it), one event at a time, so only the guilty one is a dead letter.
        var refused: PostgresError?
        guard try await untilDone(logger, {
            do {
                try await infrastructure.delayQueue.schedule(work.flatMap(\.delayed))
                try await sender.sendFirst(work.flatMap(\.immediate), consumedAt: consumedAt)
            } catch let error as PostgresError where error.isDataError {
                refused = error
            }
        }) else { return false }
        guard let refused else { return true }
        logger.warning("PostgreSQL refused a batch of events; handling them one at a time", metadata: ["error": "\(refused)"])
        for item in work where !item.immediate.isEmpty || !item.delayed.isEmpty {
            guard try await untilDone(logger, {
                do {
                    try await infrastructure.delayQueue.schedule(item.delayed)
                    try await sender.sendFirst(item.immediate, consumedAt: consumedAt)
                } catch let error as PostgresError where error.isDataError {
                    try await rejects.record(item.message, reason: "unstorable", error: "PostgreSQL refused the event: \(error)")
                }
            }) else { return false }
        }
        return true
    }
}

/// Retries infrastructure failures with backoff until they succeed; false when
/// the service is shutting down first (the Kafka offset then stays uncommitted).
func untilDone(_ logger: Logger, _ body: () async throws -> Void) async throws -> Bool {
    let backoff = Backoff(base: .milliseconds(100), max: .seconds(5))
    var attempt = 0
    while true {
        do {
            try await body()
            return true
        } catch {
            attempt += 1
            if Task.isCancelled || Task.isShuttingDownGracefully { return false }
            logger.warning("will retry", metadata: ["error": "\(error)", "attempt": "\(attempt)"])
            try? await Task.sleep(for: backoff.delay(afterAttempt: attempt))
        }
    }
}

/// Dead letters for invalid Kafka input: a `reach.dead_letters` row (once per
/// topic/partition/offset) and a message on `reach.dlq`.
///
/// The row keeps the whole message: `payload` holds it as a JSON string (NUL
/// replaced by U+FFFD, invalid UTF-8 decoded lossily) and, when that copy is not
/// exact, `raw` holds the bytes. The topic's copy always fits
/// `kafka.dlq_max_bytes`: the payload and the error (which may quote a value)
/// are cut, each cut ends with a marker, and `"truncated": true` is set.
struct InputDeadLetters: Sendable {
    let infrastructure: Infrastructure
    let metrics: PipelineMetrics
    let logger: Logger

    /// The error text kept in the table (UTF-8 bytes); the topic's copy is at most twice that, escaped.
    static let maxErrorBytes = 4_096
    /// A message key longer than this is cut on the dead letter (the key counts toward the topic's limit).
    static let maxKeyBytes = 1_024
    /// Room left in `dlq_max_bytes` for the Kafka record's own framing.
    static let recordOverhead = 512

    struct Letter: Sendable {
        var reason: String
        /// For the table: storable, at most `maxErrorBytes` (+ marker).
        var error: String
        var payloadJSON: String
        /// The exact bytes, when `payloadJSON` is not an exact copy.
        var raw: [UInt8]?
        var key: String?
        /// The `reach.dlq` message.
        var dlq: String
        var truncated: Bool
    }

    func record(_ message: KafkaMessage, _ error: ValidationError) async throws {
        let reason = error.message.hasPrefix("not valid JSON") ? "unparseable" : "invalid"
        try await record(message, reason: reason, error: error.description)
    }

    /// `reason` `unstorable`: PostgreSQL refused the message's own content (see `PostgresError.isDataError`).
    func record(_ message: KafkaMessage, reason: String, error: String) async throws {
        let letter = Self.letter(message, reason: reason, error: error, maxBytes: infrastructure.configuration.kafka.dlqMaxBytes)
        try await DeadLetterStore(client: infrastructure.postgres).recordInput(
            topic: message.topic, partition: message.partition, offset: message.offset, reason: letter.reason,
            error: letter.error, payloadJSON: letter.payloadJSON, raw: letter.raw)
        try await infrastructure.producer.send(topic: infrastructure.configuration.kafka.topics.dlq, key: letter.key, value: letter.dlq)
        metrics.inputRejected(topic: message.topic, reason: reason)
        logger.warning("input rejected", metadata: [
            "topic": "\(message.topic)", "partition": "\(message.partition)", "offset": "\(message.offset)",
            "reason": "\(reason)", "error": "\(JSONText.cut(letter.error, maxBytes: 512).text)", "truncated": "\(letter.truncated)",
        ])
    }

    /// Builds both copies of a dead letter (pure; the size rules live here).
    static func letter(_ message: KafkaMessage, reason: String, error: String, maxBytes: Int, failedAt: Date = Date()) -> Letter {
        let exact = String(validating: message.value, as: UTF8.self).flatMap { $0.utf8.contains(0) ? nil : $0 }
        let text = exact ?? JSONText.storable(String(decoding: message.value, as: UTF8.self))
        let (tableError, errorCut) = JSONText.cut(JSONText.storable(error), maxBytes: maxErrorBytes)
        var key = message.key.map { JSONText.storable(String(decoding: $0, as: UTF8.self)) }
        var keyCut = false
        if let k = key, k.utf8.count > maxKeyBytes {
            key = JSONText.cut(k, maxBytes: maxKeyBytes).text
            keyCut = true
        }
        var envelope = JSONObjectWriter()
        envelope.add("reason", reason)
        envelope.add("error", json: JSONText.quote(tableError, maxBytes: 2 * maxErrorBytes).text)
        envelope.add("source", "input")
        envelope.add("topic", message.topic)
        envelope.add("partition", Int(message.partition))
        envelope.add("offset", Int(message.offset))
        envelope.add("failed_at", RFC3339.format(failedAt))
        let fixed = envelope.text.utf8.count + #","payload":"#.utf8.count + #","truncated":true}"#.utf8.count
        let budget = maxBytes - recordOverhead - (key?.utf8.count ?? 0) - fixed
        let (payload, payloadCut) = JSONText.quote(text, maxBytes: budget)
        envelope.add("payload", json: payload)
        let truncated = payloadCut || errorCut || keyCut
        if truncated { envelope.add("truncated", json: "true") }
        return Letter(reason: reason, error: tableError, payloadJSON: JSONText.quote(text), raw: exact == nil ? message.value : nil,
                      key: key, dlq: envelope.finish(), truncated: truncated)
    }
}
