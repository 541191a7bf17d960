import Foundation
import Logging
import ReachPostgres
import ReachCore
import ReachRedis
import ServiceLifecycle

/// `reachd serve`: the service group of the daemon, with graceful shutdown on
/// SIGTERM/SIGINT bounded by `shutdown.grace_period_ms`.
public struct Daemon: Sendable {
    public let configuration: ReachConfiguration
    public let logger: Logger

    public init(configuration: ReachConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    public func run(onListening: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let infrastructure = try Infrastructure(configuration: configuration, logger: logger)
        defer { infrastructure.shutdown() }
        let metrics = ReachMetrics()
        let readiness = Readiness(infrastructure: infrastructure, metrics: metrics, logger: logger)
        try await Migrator(client: infrastructure.postgres, logger: logger).ensureCurrent()
        let registry = try ChannelRegistry.make(configuration: configuration, postgres: infrastructure.postgres, redis: infrastructure.redis)
        let wake = WakeSignal()
        let breakers = ChannelBreakers(registry: registry, metrics: metrics.pipeline)
        let pauses = PausedChannels(switches: infrastructure.channelSwitches, channels: Array(configuration.channels.keys),
                                    metrics: metrics.pipeline, logger: logger)
        let intake = TaskIntake(infrastructure: infrastructure, metrics: metrics.pipeline, logger: logger, wake: wake.signal)
        // One pipeline per process: every campaign, trigger and retry shares its senders.
        let owner = "\(ProcessInfo.processInfo.hostName)/\(getpid())/\(UInt32.random(in: 0...UInt32.max))"
        let pipeline = DeliveryPipeline(infrastructure: infrastructure, registry: registry, breakers: breakers, pauses: pauses,
                                        metrics: metrics.pipeline, logger: logger, owner: owner)
        let runner = CampaignRunner(infrastructure: infrastructure, registry: registry, pipeline: pipeline, metrics: metrics.pipeline,
                                    logger: logger, wake: wake)
        let sampler = MetricsSampler(infrastructure: infrastructure, metrics: metrics.pipeline, logger: logger, pauses: pauses)
        let rules = TriggerRules(postgres: infrastructure.postgres, channels: Set(configuration.channels.keys), logger: logger)
        let scheduler = DelayScheduler(infrastructure: infrastructure, pipeline: pipeline, logger: logger, triggerRules: rules, wake: wake)
        let triggers = TriggerIntake(infrastructure: infrastructure, rules: rules, sender: scheduler.triggerSender, metrics: metrics.pipeline, logger: logger)
        let publisher = DeadLetterPublisher(infrastructure: infrastructure, logger: logger)
        let api = OperatorAPI(infrastructure: infrastructure, rules: rules, wake: wake.signal, breakers: breakers,
                              previewTimeout: .milliseconds(configuration.http.previewTimeoutMs))
        let gateway = APIGateway(
            tokens: APITokens(settings: configuration.auth),
            limiter: APIRateLimiter(rate: Double(configuration.http.tokenRatePerSecond), burst: Double(configuration.http.tokenBurst)),
            maxBodyBytes: configuration.http.maxBodyBytes, audit: AuditStore(client: infrastructure.postgres), logger: logger)
        let http = HTTPServer.makeApplication(
            settings: configuration.http, readiness: readiness, metrics: metrics, api: api, gateway: gateway, logger: logger,
            onRunning: { port in
                logger.info("HTTP server listening", metadata: ["host": "\(configuration.http.host)", "port": "\(port)"])
                await onListening(port)
            })
        var group = ServiceGroupConfiguration(
            services: [.init(service: http), .init(service: intake), .init(service: triggers), .init(service: runner), .init(service: scheduler),
                       .init(service: publisher), .init(service: sampler), .init(service: readiness)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger)
        group.maximumGracefulShutdownDuration = .milliseconds(configuration.shutdown.gracePeriodMs)
        logger.info("reachd starting", metadata: [
            "version": "\(ReachVersion.current)",
            "kafka": "\(infrastructure.kafkaBootstrap)",
            "postgres": "\(Redaction.maskConnectionSecrets(configuration.postgres.url))",
            "redis": "\(Redaction.maskConnectionSecrets(configuration.redis.url))",
        ])
        await warnUnlessDurable(infrastructure.redis)
        do {
            try await ServiceGroup(configuration: group).run()
        } catch {
            // A service that failed (the HTTP port taken, say) ends the group: the
            // channels' HTTP clients must still be shut down (AsyncHTTPClient traps
            // on a client dropped while running), so the error, not a crash, is what shows.
            await registry.shutdown()
            throw error
        }
        await registry.shutdown()
        logger.info("reachd stopped")
    }

    /// Idempotency keys and the delay queue must survive a Redis restart and
    /// must never be evicted (README "Delivery semantics"): warn when the
    /// server says otherwise. A server that refuses CONFIG (managed Redis) is not asked.
    func warnUnlessDurable(_ redis: RedisClient) async {
        func value(_ name: String) async -> String? {
            guard let reply = try? await redis.send("CONFIG", "GET", name), let items = reply.array, items.count == 2 else { return nil }
            return items[1].string
        }
        if let aof = await value("appendonly"), aof != "yes" {
            logger.warning("Redis runs without AOF (appendonly no): a Redis restart loses idempotency keys and delayed work",
                           metadata: ["appendonly": "\(aof)"])
        }
        if let policy = await value("maxmemory-policy"), policy != "noeviction" {
            logger.warning("Redis may evict keys (maxmemory-policy is not noeviction): an evicted idempotency key or queue item breaks at-most-once",
                           metadata: ["maxmemory_policy": "\(policy)"])
        }
    }
}
