import CRdKafka
import Synchronization

/// A Kafka-protocol broker inside this process, built on librdkafka's mock
/// cluster. It listens on loopback, so any Kafka client can use
/// `bootstrapServers`. For development and tests only: it keeps only the most
/// recent few MB of each partition.
public final class EmbeddedKafka: Sendable {
    public let bootstrapServers: String
    private let handle: RDKafkaHandle
    private let cluster: RDKafkaHandle
    private let stopped = Atomic<Bool>(false)

    /// Starts the broker(s) and creates `topics` (name → partition count).
    public init(brokers: Int = 1, topics: [String: Int] = [:]) throws {
        let conf = try RDKafkaConfig.make(["log_level": "3"])
        let handle = RDKafkaHandle(pointer: try RDKafkaConfig.newHandle(type: RD_KAFKA_PRODUCER, conf: conf))
        guard let cluster = rd_kafka_mock_cluster_new(handle.pointer, Int32(brokers)) else {
            rd_kafka_destroy(handle.pointer)
            throw KafkaError(context: "embedded broker", message: "could not start the mock cluster")
        }
        self.handle = handle
        self.cluster = RDKafkaHandle(pointer: cluster)
        self.bootstrapServers = String(cString: rd_kafka_mock_cluster_bootstraps(cluster))
        for (name, partitions) in topics.sorted(by: { $0.key < $1.key }) {
            try createTopic(name, partitions: partitions)
        }
    }

    public func createTopic(_ name: String, partitions: Int) throws {
        let err = rd_kafka_mock_topic_create(cluster.pointer, name, Int32(partitions), 1)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(code: err, context: "create topic \(name)") }
    }

    /// Stops the broker; clients connected to it see the connection drop.
    public func shutdown() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        rd_kafka_mock_cluster_destroy(cluster.pointer)
        rd_kafka_destroy(handle.pointer)
    }

    deinit { shutdown() }
}
