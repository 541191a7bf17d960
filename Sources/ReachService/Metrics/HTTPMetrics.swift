import Prometheus
import Synchronization

/// HTTP request count and latency by route template, method and status (SPEC §8).
public final class HTTPMetrics: Sendable {
    let registry: PrometheusCollectorRegistry
    private let counters = Mutex<[String: Counter]>([:])
    private let histograms = Mutex<[String: DurationHistogram]>([:])

    static let buckets: [Duration] = [.milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
                                      .milliseconds(100), .milliseconds(200), .milliseconds(500), .seconds(1), .seconds(5)]

    init(registry: PrometheusCollectorRegistry) { self.registry = registry }

    func request(route: String, method: String, status: Int, duration: Duration) {
        let key = "\(method) \(route) \(status)"
        counters.withLock { cache in
            if let c = cache[key] { return c }
            let c = registry.makeCounter(
                descriptor: .init(namespace: "reach", metricName: "http_requests", unitName: "total",
                                  helpText: "HTTP requests by route template, method and status."),
                labels: [("route", route), ("method", method), ("status", String(status))])
            cache[key] = c
            return c
        }.increment()
        histograms.withLock { cache in
            let key = "\(method) \(route)"
            if let h = cache[key] { return h }
            let h = registry.makeDurationHistogram(
                descriptor: .init(namespace: "reach", metricName: "http_request_duration", unitName: "seconds",
                                  helpText: "Time to answer an HTTP request, by route template and method."),
                labels: [("route", route), ("method", method)], buckets: Self.buckets)
            cache[key] = h
            return h
        }.record(duration)
    }
}
