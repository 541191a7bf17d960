import Synchronization

/// A Kafka-protocol broker inside this process, built on librdkafka's mock
/// cluster. It listens on loopback, so any Kafka client can use
/// `bootstrapServers`. For development and tests only: it keeps only the most
/// recent few MB of each partition.
public final class EmbeddedKafka: Sendable {
    public let bootstrapServers: String
    private let cluster: RDKafkaMockCluster
    private let stopped = Atomic<Bool>(false)

    /// Starts the broker(s) and creates `topics` (name → partition count).
    public init(brokers: Int = 1, topics: [String: Int] = [:]) throws {
        let cluster = try RDKafkaMockCluster(brokers: brokers)
        self.cluster = cluster
        self.bootstrapServers = cluster.bootstrapServers
        for (name, partitions) in topics.sorted(by: { $0.key < $1.key }) {
            try createTopic(name, partitions: partitions)
        }
    }

    public func createTopic(_ name: String, partitions: Int) throws {
        try cluster.createTopic(name, partitions: partitions)
    }

    /// Stops the broker; clients connected to it see the connection drop.
    public func shutdown() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        cluster.destroy()
    }

    deinit {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let cluster = self.cluster
        Teardown.detach("reach-kafka-broker-destroy") { cluster.destroy() }
    }
}
