import Foundation
import Logging
import ReachCore
import ReachKafka
import ReachPostgres
import ReachRedis
import ServiceLifecycle
import Synchronization

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
        (self.infrastructure, self.rules, self.sender, self.metrics, self.logger) = (infrastructure, rules, sender, metrics, logger)
    }

    /// Events handled in one pass. 256 capped the intake near 9 000 events/s (a pass costs ~25 ms
    /// of round trips), so at 10 000/s the backlog grew into seconds of latency.
    static let maxBatch = 2_000

    public func run() async throws {
        let topic = infrastructure.configuration.kafka.topics.events
        let consumer = try infrastructure.makeConsumer(topics: [topic], groupSuffix: Infrastructure.eventsGroupSuffix, logger: logger)
        let rejects = InputDeadLetters(infrastructure: infrastructure, metrics: metrics, logger: logger)
        do {
            // Whatever is ready, up to `maxBatch`: at a low rate a batch is an event or two (latency), under
            // load it grows until one pass through PostgreSQL, Redis and the providers carries the rate.
            // A pass's offsets are committed while the next pass is handled: its rows are durable
            // already, and commits stay in order (each waits for the one before).
            var committing: Task<Bool, any Error>?
            defer { committing?.cancel() }
            for try await batch in consumer.batches(max: Self.maxBatch).cancelOnGracefulShutdown() {
                // The events' end-to-end time starts here, before rules, recipients and retries.
                guard try await handle(batch, rejects, consumedAt: Date()) else { break }
                var next: [TopicPartition: Int64] = [:]
                for m in batch { next[m.topicPartition] = max(next[m.topicPartition] ?? 0, m.offset + 1) }
                if let committing, try await committing.value == false { break }
                committing = Task { [logger] in try await commitOffsets(consumer, next, logger) }
            }
            if let committing { _ = try await committing.value }
            committing = nil
        } catch {
            await consumer.close()
            throw error
        }
        await consumer.close()
    }

    /// Handles what the consumer had ready, together: invalid events are dead
    /// letters, delayed rules go into the delay queue, and every immediate
    /// (rule, event) send of the batch goes out through one `TriggerSender.send` (a
    /// redelivered or repeated event finds its row and sends nothing).
    /// Retried until durable; false when shutdown came first (nothing of the
    /// batch is committed then). `consumedAt`: when the batch was read.
    func handle(_ batch: [KafkaMessage], _ rejects: InputDeadLetters, consumedAt: Date = Date()) async throws -> Bool {
        var work: [(message: KafkaMessage, immediate: [TriggerSender.Request], delayed: [DelayQueue.NewItem])] = []
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
            var immediate: [TriggerSender.Request] = []
            var delayed: [DelayQueue.NewItem] = []
            for rule in rules where seen.insert(rule.campaignID(for: event)).inserted {
                if rule.delaySeconds > 0 {
                    let work = DelayedWork.triggerSend(.init(rule_id: rule.id, event: event.json))
                    let due = Epoch.ms() + Int64(rule.delaySeconds) * 1000
                    delayed.append((TriggerSender.delayedID(rule.campaignID(for: event)), work.payload, due))
                } else {
                    immediate.append(.init(rule: rule, event: event))
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
                try await sender.send(work.flatMap(\.immediate), consumedAt: consumedAt)
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
                    try await sender.send(item.immediate, consumedAt: consumedAt)
                } catch let error as PostgresError where error.isDataError {
                    try await rejects.record(item.message, reason: "unstorable", error: "PostgreSQL refused the event: \(error)")
                }
            }) else { return false }
        }
        return true
    }
}
