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

    /// A broker request a fault can be injected into.
    public enum Request: Int16, Sendable {
        case produce = 0, fetch = 1, offsetCommit = 8, heartbeat = 12, joinGroup = 11, syncGroup = 14
    }

    /// Well-known broker error codes, for injected faults.
    public enum BrokerError: Int32, Sendable {
        case illegalGeneration = 22, unknownMemberID = 25, rebalanceInProgress = 27, requestTimedOut = 7, notCoordinator = 16
    }

    /// Fault injection: the next requests of `request` are answered with
    /// `errors`, one request each, in order (librdkafka's mock cluster).
    public func failNext(_ request: Request, with errors: [BrokerError]) {
        cluster.failRequests(apiKey: request.rawValue, codes: errors.map(\.rawValue))
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
