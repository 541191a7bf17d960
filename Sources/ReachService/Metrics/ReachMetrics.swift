import Prometheus

/// The process's Prometheus registry and the metrics reachd exports (SPEC §8).
/// Every metric carries help text, so the exposition passes `promtool check metrics`.
public final class ReachMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    public let version: String
    public let pipeline: PipelineMetrics
    public let http: HTTPMetrics

    public init(version: String = ReachVersion.current) {
        self.registry = PrometheusCollectorRegistry()
        self.version = version
        self.pipeline = PipelineMetrics(registry: registry)
        self.http = HTTPMetrics(registry: registry)
        registry.makeGauge(descriptor: .init(namespace: "reach", metricName: "build", unitName: "info",
                                             helpText: "Build information of reachd; the value is always 1."),
                           labels: [("version", version)]).set(to: 1.0)
    }

    /// 1 when the dependency answered the last readiness check, else 0.
    public func dependencyUp(_ dependency: String, _ up: Bool) {
        registry.makeGauge(descriptor: .init(namespace: "reach", metricName: "dependency", unitName: "up",
                                             helpText: "Whether a dependency (kafka, postgres, redis) answered the last readiness check."),
                           labels: [("dependency", dependency)])
            .set(to: up ? 1.0 : 0.0)
    }

    /// The Prometheus text exposition of every registered metric, then the
    /// `process_*` series read at this moment (`ProcessMetrics`).
    public func exposition() -> String {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        ProcessMetrics.emit(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }
}

public enum ReachVersion {
    public static let current = "0.1.0"
}
