import Prometheus
import ReachCore
import Synchronization

/// A message's outcome as `reach_messages_total{status}` counts it (SPEC §8):
/// `failed` is a provider call that failed (the message is then `retried` or `dead` too).
public enum MessageStatus: String, Sendable {
    case sent, failed, retried, dead, skipped
}

/// Where a delivery came from, as `reach_end_to_end_seconds{kind}` labels it.
public enum DeliveryKind: String, Sendable {
    /// A campaign task (from `reach.tasks` or the API).
    case task
    /// A trigger event (from `reach.events`).
    case event
}

/// The SPEC §8 metrics the pipeline produces. Handles are cached, so the hot
/// path pays a dictionary lookup, not a registry lock.
public final class PipelineMetrics: Sendable {
    let registry: PrometheusCollectorRegistry
    private let counters = Mutex<[String: Counter]>([:])
    private let histograms = Mutex<[String: DurationHistogram]>([:])
    private let gauges = Mutex<[String: Gauge]>([:])

    static let sendBuckets: [Duration] = [.milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
                                          .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
                                          .milliseconds(2500), .seconds(5), .seconds(10)]
    static let endToEndBuckets: [Duration] = [.milliseconds(10), .milliseconds(50), .milliseconds(100), .milliseconds(250),
                                              .milliseconds(500), .seconds(1), .seconds(2), .seconds(5), .seconds(10),
                                              .seconds(30), .seconds(60), .seconds(300)]

    public init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
        // Make the families visible from the first scrape.
        for state in CampaignState.allCases.map(\.rawValue) { campaigns(state: state, count: 0) }
        delayQueueDepth(0)
    }

    /// `provider`: which of the channel's providers was called (nil for an outcome no provider
    /// call decided: skipped, or deferred while every breaker was open).
    public func message(channel: String, status: MessageStatus, provider: String? = nil, count: Int = 1) {
        guard count > 0 else { return }
        let status = status.rawValue
        let key = "m|\(channel)|\(status)|\(provider ?? "")"
        let counter = counters.withLock { cache in
            if let c = cache[key] { return c }
            var labels = [("channel", channel), ("status", status)]
            if let provider { labels.append(("provider", provider)) }
            let c = registry.makeCounter(
                descriptor: .init(namespace: "reach", metricName: "messages", unitName: "total",
                                  helpText: "Messages by channel and outcome (sent, failed, retried, dead, skipped)."),
                labels: labels)
            cache[key] = c
            return c
        }
        counter.increment(by: Int64(count))
    }

    public func inputRejected(topic: String, reason: String) {
        let key = "r|\(topic)|\(reason)"
        let counter = counters.withLock { cache in
            if let c = cache[key] { return c }
            let c = registry.makeCounter(
                descriptor: .init(namespace: "reach", metricName: "input_rejected", unitName: "total",
                                  helpText: "Kafka messages refused as invalid and dead-lettered, by topic and reason."),
                labels: [("topic", topic), ("reason", reason)])
            cache[key] = c
            return c
        }
        counter.increment()
    }

    public func sendDuration(channel: String, provider: String, _ duration: Duration) {
        histogram("s|\(channel)|\(provider)") {
            registry.makeDurationHistogram(
                descriptor: .init(namespace: "reach", metricName: "send_duration", unitName: "seconds",
                                  helpText: "Time of one provider call (a batch), by channel."),
                labels: [("channel", channel), ("provider", provider)], buckets: Self.sendBuckets)
        }.record(duration)
    }

    public func endToEnd(kind: DeliveryKind, _ duration: Duration, count: Int = 1) {
        let kind = kind.rawValue
        let h = histogram("e|\(kind)") {
            registry.makeDurationHistogram(
                descriptor: .init(namespace: "reach", metricName: "end_to_end", unitName: "seconds",
                                  helpText: "From the task or event being consumed to the message being sent."),
                labels: [("kind", kind)], buckets: Self.endToEndBuckets)
        }
        for _ in 0..<count { h.record(duration) }
    }

    public func campaigns(state: String, count: Int) {
        gauge("c|\(state)") {
            registry.makeGauge(descriptor: .init(namespace: "reach", metricName: "campaigns", unitName: "",
                                                 helpText: "Campaigns by state."),
                               labels: [("state", state)])
        }.set(to: Double(count))
    }

    public func delayQueueDepth(_ depth: Int) {
        gauge("dq") {
            registry.makeGauge(descriptor: .init(namespace: "reach", metricName: "delay_queue_depth", unitName: "",
                                                 helpText: "Items waiting or in flight in the Redis delay queue."),
                               labels: [])
        }.set(to: Double(depth))
    }

    public func circuitOpen(channel: String, _ open: Bool) {
        gauge("b|\(channel)") {
            registry.makeGauge(descriptor: .init(namespace: "reach", metricName: "circuit_open", unitName: "",
                                                 helpText: "1 while the channel's circuit breaker is open or half-open."),
                               labels: [("channel", channel)])
        }.set(to: open ? 1 : 0)
    }

    public func providerCircuitOpen(channel: String, provider: String, _ open: Bool) {
        gauge("bp|\(channel)|\(provider)") {
            registry.makeGauge(descriptor: .init(namespace: "reach", metricName: "provider_circuit_open", unitName: "",
                                                 helpText: "1 while this provider's circuit breaker is open (channels with several providers)."),
                               labels: [("channel", channel), ("provider", provider)])
        }.set(to: open ? 1 : 0)
    }

    public func channelPaused(channel: String, _ paused: Bool) {
        gauge("p|\(channel)") {
            registry.makeGauge(descriptor: .init(namespace: "reach", metricName: "channel_paused", unitName: "",
                                                 helpText: "1 while the channel is paused cluster-wide (its sends wait in the delay queue)."),
                               labels: [("channel", channel)])
        }.set(to: paused ? 1 : 0)
    }

    public func consumerLag(topic: String, partition: Int32, lag: Int64) {
        gauge("l|\(topic)|\(partition)") {
            registry.makeGauge(descriptor: .init(namespace: "reach", metricName: "kafka_consumer_lag", unitName: "",
                                                 helpText: "Records not yet committed by the group that consumes the topic (tasks and events have their own), by partition."),
                               labels: [("topic", topic), ("partition", String(partition))])
        }.set(to: Double(lag))
    }

    private func histogram(_ key: String, _ make: () -> DurationHistogram) -> DurationHistogram {
        histograms.withLock { cache in
            if let h = cache[key] { return h }
            let h = make()
            cache[key] = h
            return h
        }
    }

    private func gauge(_ key: String, _ make: () -> Gauge) -> Gauge {
        gauges.withLock { cache in
            if let g = cache[key] { return g }
            let g = make()
            cache[key] = g
            return g
        }
    }
}
