import Logging
import ReachKafka
import ServiceLifecycle
import Testing

/// The consumer as a ServiceLifecycle `Service`, on the embedded broker.
@Suite("KafkaConsumer as a Service")
struct KafkaConsumerServiceTests {
    @Test("graceful shutdown of its group closes the consumer: run returns and its records end")
    func gracefulShutdownCloses() async throws {
        let broker = try EmbeddedKafka(topics: ["service-shutdown": 1])
        let consumer = try makeConsumer(broker, group: "service-shutdown", topic: "service-shutdown")
        let group = ServiceGroup(configuration: .init(services: [consumer], logger: Logger(label: "test")))
        let reading = Task { for try await _ in consumer.messages {} }
        let running = Task { try await group.run() }
        try await Task.sleep(for: .milliseconds(300))
        await group.triggerGracefulShutdown()
        try await running.value
        try await reading.value
    }

    @Test("run returns once the consumer was closed by other means, also when that happened before run")
    func closedElsewhere() async throws {
        let broker = try EmbeddedKafka(topics: ["service-closed": 1])
        let consumer = try makeConsumer(broker, group: "service-closed", topic: "service-closed")
        let running = Task { try await consumer.run() }
        try await Task.sleep(for: .milliseconds(100))
        await consumer.close()
        try await running.value
        try await consumer.run()
    }
}
