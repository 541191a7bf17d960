import Logging
import ReachCore
import ReachKafka
import ReachPostgres
import ReachRedis

/// The clients of the three servers, built from configuration. With
/// `kafka.brokers: embedded` it also owns the in-process broker.
public final class Infrastructure: Sendable {
    public let configuration: ReachConfiguration
    public let embeddedKafka: EmbeddedKafka?
    public let kafkaBootstrap: String
    public let producer: KafkaProducer
    public let postgres: PostgresClient
    /// The operator API's own pool (`http.postgres_pool_size`).
    public let apiPostgres: PostgresClient
    public let redis: RedisClient
    public let delayQueue: DelayQueue
    public let idempotency: IdempotencyStore
    public let quietHours: QuietHours?
    public let rateLimiter: RateLimiter
    public let frequencyCap: FrequencyCap
    /// The cluster-wide channel switch; senders read it through `PausedChannels`.
    public let channelSwitches: ChannelSwitches

    public init(configuration: ReachConfiguration, logger: Logger) throws {
        self.configuration = configuration
        if configuration.kafka.isEmbedded {
            let topics = Dictionary(uniqueKeysWithValues: configuration.kafka.topics.all.map { ($0, configuration.kafka.partitions) })
            let embedded = try EmbeddedKafka(topics: topics)
            logger.info("embedded Kafka broker started", metadata: ["bootstrap": "\(embedded.bootstrapServers)"])
            self.embeddedKafka = embedded
            self.kafkaBootstrap = embedded.bootstrapServers
        } else {
            self.embeddedKafka = nil
            self.kafkaBootstrap = configuration.kafka.brokers
        }
        self.producer = try KafkaProducer(
            configuration: .init(bootstrapServers: kafkaBootstrap, properties: configuration.kafka.properties),
            logger: logger)
        var pg = PostgresConfiguration(url: configuration.postgres.url, poolSize: configuration.postgres.poolSize)
        pg.connectTimeout = .milliseconds(configuration.postgres.connectTimeoutMs)
        pg.queryTimeout = .milliseconds(configuration.postgres.queryTimeoutMs)
        self.postgres = PostgresClient(configuration: pg)
        var api = pg
        api.poolSize = configuration.http.postgresPoolSize
        self.apiPostgres = PostgresClient(configuration: api)
        var redisConfiguration = try RedisConfiguration(url: configuration.redis.url, poolSize: configuration.redis.poolSize)
        redisConfiguration.commandTimeout = .milliseconds(configuration.redis.timeoutMs)
        self.redis = RedisClient(configuration: redisConfiguration)
        self.delayQueue = DelayQueue(redis: redis, prefix: configuration.redis.prefix, shards: configuration.pipeline.delayQueueShards)
        self.rateLimiter = RateLimiter(redis: redis, prefix: configuration.redis.prefix)
        self.frequencyCap = FrequencyCap(redis: redis, prefix: configuration.redis.prefix)
        self.channelSwitches = ChannelSwitches(redis: redis, prefix: configuration.redis.prefix)
        self.quietHours = QuietHours(start: configuration.quietHours.start, end: configuration.quietHours.end,
                                     defaultTimeZone: configuration.quietHours.defaultTimezone)
        self.idempotency = IdempotencyStore(
            redis: redis, prefix: configuration.redis.prefix,
            sentTTL: .seconds(configuration.pipeline.sentTTLHours * 3600))
    }

    /// The events consumer's group is the configured one plus this (TriggerIntake; the lag sampler reads it too).
    public static let eventsGroupSuffix = ".events"

    /// A consumer in the configured group (plus `groupSuffix`), on the configured brokers.
    /// Tasks and events use separate groups, so a rebalance or a slow handler on
    /// one topic never holds up the other.
    public func makeConsumer(topics: [String], groupSuffix: String = "", logger: Logger) throws -> KafkaConsumer {
        try KafkaConsumer(
            configuration: .init(bootstrapServers: kafkaBootstrap, groupID: configuration.kafka.groupID + groupSuffix,
                                 topics: topics,
                                 properties: configuration.kafka.properties.merging(configuration.kafka.consumerProperties) { _, own in own }),
            logger: logger)
    }

    /// Flushes the producer and stops the embedded broker, if any.
    public func shutdown() {
        try? producer.flush(timeout: .seconds(5))
        embeddedKafka?.shutdown()
    }
}
