import Logging
import ReachCore
import ReachKafka
import ReachPostgres
import ServiceLifecycle

/// Samples the gauges that are read from elsewhere every few seconds:
/// campaigns by state (PostgreSQL), the consumer groups' lag on reach.tasks and reach.events (Kafka) and
/// which channels are paused (Redis, so the gauge is current even while nothing is sent).
public struct MetricsSampler: Service {
    let infrastructure: Infrastructure
    let metrics: PipelineMetrics
    let logger: Logger
    let interval: Duration
    let pauses: PausedChannels?

    public init(infrastructure: Infrastructure, metrics: PipelineMetrics, logger: Logger, interval: Duration = .seconds(5),
                pauses: PausedChannels? = nil) {
        self.infrastructure = infrastructure
        self.metrics = metrics
        self.logger = logger
        self.interval = interval
        self.pauses = pauses
    }

    /// Reads one consumer group's committed offsets, for the topic that group consumes.
    struct LagObserver {
        let consumer: KafkaConsumer
        let topic: String
    }

    public func run() async throws {
        let kafka = infrastructure.configuration.kafka
        // Each topic under the group that consumes it (TaskIntake, TriggerIntake): its lag is what
        // that group has not committed. These consumers never subscribe to anything: they only
        // read the group's committed offsets.
        var observers: [LagObserver] = []
        for (topic, groupSuffix) in [(kafka.topics.tasks, ""), (kafka.topics.events, Infrastructure.eventsGroupSuffix)] {
            observers.append(LagObserver(consumer: try KafkaConsumer(configuration: .init(
                bootstrapServers: infrastructure.kafkaBootstrap, groupID: kafka.groupID + groupSuffix,
                topics: [], properties: kafka.properties), logger: logger), topic: topic))
        }
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            await sample(observers)
            try? await Task.sleep(for: interval)
        }
        for observer in observers { await observer.consumer.close() }
    }

    func sample(_ observers: [LagObserver]) async {
        if let counts = try? await CampaignStore(client: infrastructure.postgres).countsByState() {
            for state in CampaignState.allCases.map(\.rawValue) {
                metrics.campaigns(state: state, count: counts[state] ?? 0)
            }
        }
        // reach_dependency_up is Readiness's, from its own probes.
        if let depth = try? await infrastructure.delayQueue.depth() {
            metrics.delayQueueDepth(depth)
        }
        // Sets reach_channel_paused for every configured channel.
        await pauses?.refresh()
        for observer in observers { await sampleLag(observer) }
    }

    func sampleLag(_ observer: LagObserver) async {
        let partitions = (try? await observer.consumer.partitions(of: observer.topic)) ?? []
        guard !partitions.isEmpty, let committed = try? await observer.consumer.committedOffsets(partitions, timeout: .seconds(2)) else { return }
        for tp in partitions {
            guard let high = try? await observer.consumer.watermarks(tp, timeout: .seconds(2)).high else { continue }
            let done = (committed[tp] ?? nil) ?? 0
            metrics.consumerLag(topic: tp.topic, partition: tp.partition, lag: max(0, high - done))
        }
    }
}
