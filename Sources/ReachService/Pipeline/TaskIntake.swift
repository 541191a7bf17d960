import Foundation
import Logging
import ReachCore
import ReachKafka
import ReachPostgres
import ServiceLifecycle

/// Consumes `reach.tasks`: valid campaigns are created once, control messages
/// applied, anything invalid dead-lettered. Each offset is committed only after
/// its outcome is durable in PostgreSQL (and, for dead letters, on `reach.dlq`).
public struct TaskIntake: Service {
    let infrastructure: Infrastructure
    let parser: TaskParser
    let metrics: PipelineMetrics
    let logger: Logger
    let wake: @Sendable () -> Void

    public init(infrastructure: Infrastructure, metrics: PipelineMetrics, logger: Logger, wake: @escaping @Sendable () -> Void) {
        self.infrastructure = infrastructure
        self.parser = TaskParser(channels: Set(infrastructure.configuration.channels.keys))
        self.metrics = metrics
        self.logger = logger
        self.wake = wake
    }

    public func run() async throws {
        let topic = infrastructure.configuration.kafka.topics.tasks
        let consumer = try infrastructure.makeConsumer(topics: [topic], logger: logger)
        logger.info("task intake consuming", metadata: ["topic": "\(topic)"])
        do {
            for try await message in consumer.messages.cancelOnGracefulShutdown() {
                guard try await untilDone({ try await handle(message) }) else { break }
                guard try await untilDone({ try await consumer.commit(message) }) else { break }
            }
        } catch {
            await consumer.close()
            throw error
        }
        await consumer.close()
    }

    /// Retries infrastructure failures with backoff until they succeed; false
    /// when the service is shutting down first (the offset stays uncommitted).
    func untilDone(_ body: () async throws -> Void) async throws -> Bool {
        let backoff = Backoff(base: .milliseconds(100), max: .seconds(5))
        var attempt = 0
        while true {
            do {
                try await body()
                return true
            } catch {
                attempt += 1
                if Task.isCancelled || Task.isShuttingDownGracefully { return false }
                logger.warning("task intake will retry", metadata: ["error": "\(error)", "attempt": "\(attempt)"])
                try? await Task.sleep(for: backoff.delay(afterAttempt: attempt))
            }
        }
    }

    func handle(_ message: KafkaMessage) async throws {
        let task: TaskMessage
        do {
            task = try parser.parse(message.value)
        } catch let error as ValidationError {
            try await deadLetter(message, error)
            return
        }
        let campaigns = CampaignStore(client: infrastructure.postgres)
        switch task {
        case .campaign(let campaign):
            let specJSON = String(decoding: message.value, as: UTF8.self)
            if try await campaigns.create(campaign, specJSON: specJSON) {
                logger.info("campaign created", metadata: ["campaign": "\(campaign.campaignID)", "offset": "\(message.offset)"])
                wake()
            } else {
                logger.info("campaign already exists; task ignored", metadata: ["campaign": "\(campaign.campaignID)"])
            }
        case .pause(let id), .resume(let id), .cancel(let id):
            let control: CampaignStore.Control = switch task {
            case .pause: .pause
            case .resume: .resume
            default: .cancel
            }
            let applied = try await campaigns.control(id, control)
            logger.info(applied ? "campaign control applied" : "campaign control had nothing to do",
                        metadata: ["campaign": "\(id)", "control": "\(control.rawValue)"])
            if applied { wake() }
        }
    }

    func deadLetter(_ message: KafkaMessage, _ error: ValidationError) async throws {
        let topic = message.topic
        let reason = error.path.isEmpty && error.message == "not valid JSON" ? "unparseable" : "invalid"
        let raw = String(decoding: message.value, as: UTF8.self)
        let failedAt = RFC3339.format(Date())
        try await DeadLetterStore(client: infrastructure.postgres).recordInput(
            topic: topic, partition: message.partition, offset: message.offset, reason: reason,
            error: error.description, payloadJSON: JSONText.quote(raw))
        var dlq = JSONObjectWriter()
        dlq.add("reason", reason)
        dlq.add("error", error.description)
        dlq.add("source", "input")
        dlq.add("topic", topic)
        dlq.add("partition", Int(message.partition))
        dlq.add("offset", Int(message.offset))
        dlq.add("failed_at", failedAt)
        dlq.add("payload", raw)
        try await infrastructure.producer.send(topic: infrastructure.configuration.kafka.topics.dlq, key: message.keyString, value: dlq.finish())
        metrics.inputRejected(topic: topic, reason: reason)
        logger.warning("task rejected", metadata: [
            "topic": "\(topic)", "partition": "\(message.partition)", "offset": "\(message.offset)", "error": "\(error)",
        ])
    }
}
