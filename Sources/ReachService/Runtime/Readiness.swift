import Dispatch
import ReachKafka
import ReachPostgres
import ReachRedis

/// Checks, for real, that Kafka, PostgreSQL and Redis answer.
public struct Readiness: Sendable {
    public struct Report: Sendable {
        public var checks: [(name: String, error: String?)]
        public var ready: Bool { checks.allSatisfy { $0.error == nil } }
    }

    let infrastructure: Infrastructure
    let metrics: ReachMetrics?

    public init(infrastructure: Infrastructure, metrics: ReachMetrics?) {
        self.infrastructure = infrastructure
        self.metrics = metrics
    }

    public func check(timeout: Duration = .seconds(2)) async -> Report {
        async let kafka = Self.outcome {
            let producer = infrastructure.producer
            try await Self.offPool { try producer.checkConnectivity(timeout: timeout) }
        }
        async let postgres = Self.outcome { try await infrastructure.postgres.ping() }
        async let redis = Self.outcome { try await infrastructure.redis.ping() }
        let report = Report(checks: [("kafka", await kafka), ("postgres", await postgres), ("redis", await redis)])
        for check in report.checks { metrics?.dependencyUp(check.name, check.error == nil) }
        return report
    }

    private static func outcome(_ body: () async throws -> Void) async -> String? {
        do {
            try await body()
            return nil
        } catch {
            return "\(error)"
        }
    }

    /// Runs a blocking call on a Dispatch thread instead of the cooperative pool.
    static func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try body() }) }
        }
    }
}
