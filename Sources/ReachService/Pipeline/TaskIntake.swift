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
                guard try await untilDone(logger, { try await handle(message) }) else { break }
                guard try await commitOffsets(consumer, [message.topicPartition: message.offset + 1], logger) else { break }
            }
        } catch {
            await consumer.close()
            throw error
        }
        await consumer.close()
    }

    func handle(_ message: KafkaMessage) async throws {
        let rejects = InputDeadLetters(infrastructure: infrastructure, metrics: metrics, logger: logger)
        let task: TaskMessage
        do {
            task = try parser.parse(message.value)
        } catch let error as ValidationError {
            try await rejects.record(message, error)
            return
        }
        do {
            try await apply(task, message)
        } catch let error as PostgresError where error.isDataError {
            // Validation should have refused it; retrying cannot help, so the
            // message is a dead letter and the partition moves on.
            try await rejects.record(message, reason: "unstorable", error: "PostgreSQL refused the task: \(error)")
        }
    }

    func apply(_ task: TaskMessage, _ message: KafkaMessage) async throws {
        let campaigns = CampaignStore(client: infrastructure.postgres)
        switch task {
        case .campaign(let campaign):
            let specJSON = String(decoding: message.value, as: UTF8.self)
            let acceptedAt = Date()
            if try await campaigns.create(campaign, specJSON: specJSON, acceptedAt: acceptedAt) {
                logger.info("campaign created", metadata: ["campaign": "\(campaign.campaignID)", "offset": "\(message.offset)"])
                let due = campaign.schedule.dueDate(acceptedAt: acceptedAt)
                if campaign.schedule.isRecurring {
                    // The series waits in the delay queue for its first run; the runner's poll is the safety net.
                    try await RecurringCampaigns(infrastructure: infrastructure, logger: logger, wake: wake)
                        .queue(campaign.campaignID, at: due, expiresAt: campaign.expiresAt)
                    logger.info("recurring campaign scheduled", metadata: ["campaign": "\(campaign.campaignID)", "first_run": "\(CampaignRun.format(due))"])
                } else if due > Date() {
                    // The start waits in the delay queue; the runner's poll of scheduled_at is the safety net.
                    try await infrastructure.delayQueue.schedule(
                        id: "campaign:\(campaign.campaignID)", payload: DelayedWork.campaignStart.payload,
                        dueMs: Epoch.ms(due) + 20)
                }
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
            let outcome = try await CampaignControls(store: campaigns, wake: wake).apply(id, control)
            logger.info(outcome == .unknown || outcome.isRefusal ? "campaign control had nothing to do" : "campaign control applied",
                        metadata: ["campaign": "\(id)", "control": "\(control.rawValue)", "outcome": "\(outcome)"])
        }
    }
}
