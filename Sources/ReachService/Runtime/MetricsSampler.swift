import Logging
import ReachKafka
import ReachPostgres
import ServiceLifecycle

/// Samples the gauges that are read from elsewhere every few seconds:
/// campaigns by state (PostgreSQL), the consumer group's lag (Kafka) and
/// which channels are paused (Redis, so the gauge is current even while nothing is sent).
public struct MetricsSampler: Service {
    let infrastructure: Infrastructure
    let metrics: PipelineMetrics
    let logger: Logger
    let interval: Duration
    let pauses: PausedChannels?
    let dependencyUp: (@Sendable (String, Bool) -> Void)?

    public init(infrastructure: Infrastructure, metrics: PipelineMetrics, logger: Logger, interval: Duration = .seconds(5),
                pauses: PausedChannels? = nil, dependencyUp: (@Sendable (String, Bool) -> Void)? = nil) {
        self.infrastructure = infrastructure
        self.metrics = metrics
        self.logger = logger
        self.interval = interval
        self.pauses = pauses
        self.dependencyUp = dependencyUp
    }

    public func run() async throws {
        let topics = [infrastructure.configuration.kafka.topics.tasks]
        // A consumer that never subscribes to anything: it only reads the group's committed offsets.
        let observer = try KafkaConsumer(configuration: .init(
            bootstrapServers: infrastructure.kafkaBootstrap, groupID: infrastructure.configuration.kafka.groupID,
            topics: [], properties: infrastructure.configuration.kafka.properties), logger: logger)
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            await sample(observer, topics: topics)
            try? await Task.sleep(for: interval)
        }
        await observer.close()
    }

    func sample(_ observer: KafkaConsumer, topics: [String]) async {
        if let counts = try? await CampaignStore(client: infrastructure.postgres).countsByState() {
            for state in ["scheduled", "running", "paused", "done", "cancelled", "failed"] {
                metrics.campaigns(state: state, count: counts[state] ?? 0)
            }
        }
        // Depth doubles as the Redis health sample: a stall shows as reach_dependency_up{dependency="redis"} 0.
        if let depth = try? await infrastructure.delayQueue.depth() {
            metrics.delayQueueDepth(depth)
            dependencyUp?("redis", true)
        } else {
            dependencyUp?("redis", false)
        }
        // Sets reach_channel_paused for every configured channel.
        await pauses?.refresh()
        var partitions: [TopicPartition] = []
        for topic in topics { partitions += (try? await observer.partitions(of: topic)) ?? [] }
        guard let committed = try? await observer.committedOffsets(partitions, timeout: .seconds(2)) else { return }
        for tp in partitions {
            guard let high = try? await observer.watermarks(tp, timeout: .seconds(2)).high else { continue }
            let done = (committed[tp] ?? nil) ?? 0
            metrics.consumerLag(topic: tp.topic, partition: tp.partition, lag: max(0, high - done))
        }
    }
}
