import Logging
import ReachCore
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
        let readiness = Readiness(infrastructure: infrastructure, metrics: metrics)
        let http = HTTPServer.makeApplication(
            settings: configuration.http, readiness: readiness, metrics: metrics, logger: logger,
            onRunning: { port in
                logger.info("HTTP server listening", metadata: ["host": "\(configuration.http.host)", "port": "\(port)"])
                await onListening(port)
            })
        var group = ServiceGroupConfiguration(
            services: [.init(service: http)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger)
        group.maximumGracefulShutdownDuration = .milliseconds(configuration.shutdown.gracePeriodMs)
        logger.info("reachd starting", metadata: [
            "version": "\(ReachVersion.current)",
            "kafka": "\(infrastructure.kafkaBootstrap)",
            "postgres": "\(Redaction.maskURLPassword(configuration.postgres.url))",
            "redis": "\(Redaction.maskURLPassword(configuration.redis.url))",
        ])
        try await ServiceGroup(configuration: group).run()
        logger.info("reachd stopped")
    }
}
