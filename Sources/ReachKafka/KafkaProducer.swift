import ReachCore
import Foundation
import Logging
import Synchronization

/// A Kafka producer whose `send` returns only once the broker acknowledged the
/// record (the delivery report arrived), and throws when delivery failed.
///
/// Defaults favour durability: `acks=all`, idempotence on, and a bounded
/// `message.timeout.ms` so a send never waits forever.
public final class KafkaProducer: Sendable {
    public struct Configuration: Sendable {
        public var bootstrapServers: String
        /// Extra librdkafka properties (security, tuning); they override the defaults.
        public var properties: [String: String]

        public init(bootstrapServers: String, properties: [String: String] = [:]) {
            self.bootstrapServers = bootstrapServers
            self.properties = properties
        }

        var librdkafkaProperties: [String: String] {
            var p: [String: String] = [
                "bootstrap.servers": bootstrapServers,
                "acks": "all",
                "enable.idempotence": "true",
                "linger.ms": "2",
                "message.timeout.ms": "30000",
                "socket.keepalive.enable": "true",
            ]
            p.merge(properties) { _, new in new }
            return p
        }
    }

    private let client: RDKafkaClient
    private let reports: DeliveryReports
    private let topics = Mutex<[String: RDKafkaTopic]>([:])
    private let poller: PollThread
    private let logger: Logger

    public init(configuration: Configuration, logger: Logger = Logger(label: "reach.kafka.producer")) throws {
        self.logger = logger
        let reports = DeliveryReports()
        let client = try RDKafkaClient.producer(properties: configuration.librdkafkaProperties, reports: reports)
        self.client = client
        self.reports = reports
        self.poller = PollThread(name: "reach-kafka-producer") { client.poll(timeoutMs: 100) }
    }

    deinit {
        let (poller, client, reports) = (self.poller, self.client, self.reports)
        let handles = topics.withLock { Array($0.values) }
        Teardown.detach("reach-kafka-producer-destroy") {
            poller.stop()
            try? client.flush(timeout: .seconds(5))
            for topic in handles { topic.destroy() }
            client.destroy()
            reports.failAll(KafkaError(context: "delivery", message: "producer destroyed"))
        }
    }

    /// Produces one record and waits for the broker's acknowledgement.
    @discardableResult
    public func send(topic: String, key: [UInt8]?, value: [UInt8]) async throws -> KafkaDeliveryReport {
        let topicHandle = try topicHandle(topic)
        while true {
            do {
                return try await withCheckedThrowingContinuation { continuation in
                    let id = reports.register(continuation)
                    do {
                        try topicHandle.produce(key: key, value: value, id: id)
                    } catch {
                        reports.complete(id, with: .failure(error))
                    }
                }
            } catch let error as KafkaError where error.isQueueFull {
                try await Task.sleep(for: .milliseconds(5))
            }
        }
    }

    @discardableResult
    public func send(topic: String, key: String?, value: String) async throws -> KafkaDeliveryReport {
        try await send(topic: topic, key: key.map { Array($0.utf8) }, value: Array(value.utf8))
    }

    /// Waits until every record handed to the producer was acknowledged or failed.
    public func flush(timeout: Duration = .seconds(10)) throws {
        try client.flush(timeout: timeout)
    }

    /// Asks the cluster for metadata: proves a broker answers within `timeout`.
    public func checkConnectivity(timeout: Duration = .seconds(2)) throws {
        try client.checkMetadata(timeout: timeout)
    }

    private func topicHandle(_ name: String) throws -> RDKafkaTopic {
        try topics.withLock { topics in
            if let existing = topics[name] { return existing }
            let topic = try RDKafkaTopic(client, name: name)
            topics[name] = topic
            return topic
        }
    }
}

/// Continuations waiting for delivery reports, keyed by the id passed as the
/// message opaque.
final class DeliveryReports: Sendable {
    private let state = Mutex<(next: UInt, waiting: [UInt: CheckedContinuation<KafkaDeliveryReport, any Error>])>((1, [:]))

    func register(_ continuation: CheckedContinuation<KafkaDeliveryReport, any Error>) -> UInt {
        state.withLock { state in
            let id = state.next
            state.next &+= 1
            if state.next == 0 { state.next = 1 }
            state.waiting[id] = continuation
            return id
        }
    }

    func complete(_ id: UInt, with result: Result<KafkaDeliveryReport, any Error>) {
        let continuation = state.withLock { $0.waiting.removeValue(forKey: id) }
        continuation?.resume(with: result)
    }

    func failAll(_ error: any Error) {
        let all = state.withLock { state in
            defer { state.waiting.removeAll() }
            return Array(state.waiting.values)
        }
        for continuation in all { continuation.resume(throwing: error) }
    }
}

/// A dedicated thread that serves librdkafka's callbacks until stopped.
final class PollThread: Sendable {
    private let running = Atomic<Bool>(true)
    private let done = DispatchSemaphore(value: 0)

    init(name: String, poll: @escaping @Sendable () -> Void) {
        let thread = Thread { [self] in
            while self.running.load(ordering: .acquiring) { poll() }
            self.done.signal()
        }
        thread.name = name
        thread.start()
    }

    func stop() {
        if running.exchange(false, ordering: .acquiringAndReleasing) { done.wait() }
    }
}
