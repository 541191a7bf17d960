import ReachCore
import Dispatch
import Logging
import ServiceLifecycle
import Synchronization

/// A member of a Kafka consumer group.
///
/// Records are pulled through `messages` (an `AsyncSequence`: pulling is the
/// backpressure, nothing is read ahead beyond librdkafka's own fetch buffer).
/// Auto-commit is off: call `commit` with a processed record once its work is
/// durable, and the group resumes after it.
///
/// As a ServiceLifecycle `Service`, `run` waits until graceful shutdown or
/// cancellation, then closes the consumer; it also returns when the consumer
/// was closed by other means (`close`).
public final class KafkaConsumer: Sendable {
    public struct Configuration: Sendable {
        public var bootstrapServers: String
        public var groupID: String
        public var topics: [String]
        /// Extra librdkafka properties; they override the defaults.
        public var properties: [String: String]

        public init(bootstrapServers: String, groupID: String, topics: [String], properties: [String: String] = [:]) {
            self.bootstrapServers = bootstrapServers
            self.groupID = groupID
            self.topics = topics
            self.properties = properties
        }

        var librdkafkaProperties: [String: String] {
            var p: [String: String] = [
                "bootstrap.servers": bootstrapServers,
                "group.id": groupID,
                "enable.auto.commit": "false",
                "enable.auto.offset.store": "false",
                "auto.offset.reset": "earliest",
                "session.timeout.ms": "10000",
                "heartbeat.interval.ms": "1000",
                "fetch.wait.max.ms": "50",
                "socket.keepalive.enable": "true",
            ]
            p.merge(properties) { _, new in new }
            return p
        }
    }

    private let client: RDKafkaClient
    private let group: GroupState
    private let pollQueue = DispatchQueue(label: "reach.kafka.consumer.poll")
    private let commitQueue = DispatchQueue(label: "reach.kafka.consumer.commit")
    /// Running, closing or closed, and who waits for the close; every decision that depends on it is one transition.
    private let state = Mutex(StateMachine<CheckedContinuation<Void, Never>>())
    private let logger: Logger
    public let configuration: Configuration

    public init(configuration: Configuration, logger: Logger = Logger(label: "reach.kafka.consumer")) throws {
        self.configuration = configuration
        self.logger = logger
        let group = GroupState(logger: logger)
        let client = try RDKafkaClient.consumer(properties: configuration.librdkafkaProperties, group: group)
        // With no topics the client only observes (committed offsets, watermarks).
        if !configuration.topics.isEmpty {
            do {
                try client.subscribe(configuration.topics)
            } catch {
                client.destroy()
                throw error
            }
        }
        self.client = client
        self.group = group
    }

    deinit {
        // No poll block can be running: each holds a reference to `self`.
        let client = self.client
        switch state.withLock({ $0.deinitialize() }) {
        case .leaveGroupAndDestroy:
            Teardown.detach("reach-kafka-consumer-close") {
                client.consumerClose()
                client.destroy()
            }
        case .destroy:
            Teardown.detach("reach-kafka-consumer-destroy") { client.destroy() }
        }
    }

    /// The partitions this member owns right now.
    public var assignment: Set<TopicPartition> { group.assignment }

    public var messages: Messages { Messages(consumer: self) }

    /// Commits `message.offset + 1` for its partition and waits for the broker.
    public func commit(_ message: KafkaMessage) async throws {
        try await commit([message.topicPartition: message.offset + 1])
    }

    /// Commits the given next-offsets (the offset of the next record to read).
    public func commit(_ nextOffsets: [TopicPartition: Int64]) async throws {
        guard !nextOffsets.isEmpty else { return }
        let client = self.client
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            commitQueue.async {
                continuation.resume(with: Result { try client.commit(nextOffsets) })
            }
        }
    }

    /// Commits like `commit`, but gives the offsets up (false) when the group
    /// has moved past this member's generation: the partitions may belong to
    /// another member by now, which reads them again from the last committed
    /// offset (at-least-once), and only the next poll can rejoin the group —
    /// retrying the commit instead would wait for ever (`UNKNOWN_MEMBER_ID`).
    public func commitIfStillMember(_ nextOffsets: [TopicPartition: Int64]) async throws -> Bool {
        do {
            try await commit(nextOffsets)
            return true
        } catch let error as KafkaError where error.isStaleMembership {
            return false
        }
    }

    /// The group's committed next-offset for each partition (nil: nothing committed).
    public func committedOffsets(_ partitions: [TopicPartition], timeout: Duration = .seconds(5)) async throws -> [TopicPartition: Int64?] {
        let client = self.client
        return try await withCheckedThrowingContinuation { continuation in
            commitQueue.async {
                continuation.resume(with: Result { try client.committed(partitions, timeout: timeout) })
            }
        }
    }

    /// The (low, high) watermarks of a partition; `high` is the next offset to be written.
    public func watermarks(_ tp: TopicPartition, timeout: Duration = .seconds(2)) async throws -> (low: Int64, high: Int64) {
        let client = self.client
        return try await withCheckedThrowingContinuation { continuation in
            commitQueue.async {
                continuation.resume(with: Result { try client.watermarks(tp, timeout: timeout) })
            }
        }
    }

    /// The partitions of `topic`, from cluster metadata.
    public func partitions(of topic: String, timeout: Duration = .seconds(2)) async throws -> [TopicPartition] {
        let client = self.client
        return try await withCheckedThrowingContinuation { continuation in
            commitQueue.async {
                continuation.resume(with: Result {
                    try client.partitionCount(of: topic, timeout: timeout)
                }.map { count in (0..<count).map { TopicPartition(topic, $0) } })
            }
        }
    }

    public func checkConnectivity(timeout: Duration = .seconds(2)) throws {
        try client.checkMetadata(timeout: timeout)
    }

    /// Leaves the group (handing its partitions to the other members) and stops
    /// delivering records. Commits nothing on its own: commit before closing.
    /// A second call while the first is under way returns at once.
    public func close() async {
        guard state.withLock({ $0.close() }) == .leaveGroup else { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            pollQueue.async { [self] in
                self.leaveGroup()
                continuation.resume()
            }
        }
    }

    /// On the poll queue, after `close` decided to: leaves the group and wakes `run`.
    private func leaveGroup() {
        client.consumerClose()
        for waiter in state.withLock({ $0.closeFinished() }) { waiter.resume() }
        logger.debug("consumer closed", metadata: ["group": "\(configuration.groupID)"])
    }

    /// Polls once (up to 100 ms) and drains what else is ready, up to `max`
    /// records; nil once the consumer is closing or closed.
    fileprivate func pollBatch(max: Int) async throws -> [KafkaMessage]? {
        let client = self.client
        let logger = self.logger
        return try await withCheckedThrowingContinuation { continuation in
            pollQueue.async { [self] in
                guard self.state.withLock({ $0.poll() }) == .poll else { return continuation.resume(returning: nil) }
                var batch: [KafkaMessage] = []
                var timeout: Int32 = 100
                while batch.count < max, let event = client.consumerPoll(timeoutMs: timeout) {
                    timeout = 0
                    switch event {
                    case .message(let message):
                        batch.append(message)
                    case .partitionEOF:
                        continue
                    case .error(let error):
                        if let fatal = client.fatalErrorMessage() {
                            return continuation.resume(throwing: KafkaError(context: "consume", message: fatal))
                        }
                        logger.warning("consumer error", metadata: ["error": "\(error)"])
                    }
                }
                continuation.resume(returning: batch)
            }
        }
    }

    /// What is ready, up to `max` records at a time (never empty; waits for the
    /// first record), in delivery order; ends when the consumer is closed or
    /// the task is cancelled. For handling records together: one round trip
    /// for many.
    public func batches(max: Int = 256) -> Batches { Batches(consumer: self, max: max) }

    public struct Batches: AsyncSequence, Sendable {
        public typealias Element = [KafkaMessage]
        let consumer: KafkaConsumer
        let max: Int

        public func makeAsyncIterator() -> Iterator { Iterator(consumer: consumer, max: max) }

        public struct Iterator: AsyncIteratorProtocol {
            let consumer: KafkaConsumer
            let max: Int

            public mutating func next() async throws -> [KafkaMessage]? {
                while true {
                    if Task.isCancelled { return nil }
                    guard let batch = try await consumer.pollBatch(max: max) else { return nil }
                    if !batch.isEmpty { return batch }
                }
            }
        }
    }

    /// Records in the order librdkafka delivers them; ends when the consumer is
    /// closed or the task is cancelled.
    public struct Messages: AsyncSequence, Sendable {
        public typealias Element = KafkaMessage
        let consumer: KafkaConsumer

        public func makeAsyncIterator() -> Iterator { Iterator(consumer: consumer) }

        public struct Iterator: AsyncIteratorProtocol {
            let consumer: KafkaConsumer
            var buffer: [KafkaMessage] = []
            var position = 0

            public mutating func next() async throws -> KafkaMessage? {
                while position >= buffer.count {
                    if Task.isCancelled { return nil }
                    guard let next = try await consumer.pollBatch(max: 256) else { return nil }
                    buffer = next
                    position = 0
                }
                defer { position += 1 }
                return buffer[position]
            }
        }
    }
}

/// The group assignment, kept current by librdkafka's rebalance callback
/// (served on the poll thread).
final class GroupState: Sendable {
    private let owned = Mutex<Set<TopicPartition>>([])
    private let logger: Logger

    init(logger: Logger) { self.logger = logger }

    var assignment: Set<TopicPartition> { owned.withLock { $0 } }

    func assigned(_ partitions: [TopicPartition]) {
        owned.withLock { $0 = Set(partitions) }
        logger.info("partitions assigned", metadata: ["partitions": "\(partitions.map(\.description).sorted())"])
    }

    func revoked(_ partitions: [TopicPartition]) {
        owned.withLock { $0 = [] }
        logger.info("partitions revoked", metadata: ["partitions": "\(partitions.map(\.description).sorted())"])
    }
}

extension KafkaConsumer: Service {
    /// Waits until graceful shutdown or cancellation and then closes the
    /// consumer; returns as soon as it is closed, by this or by `close`.
    public func run() async throws {
        await withTaskCancellationOrGracefulShutdownHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                if let now = state.withLock({ $0.waitForClose(continuation) }) { now.resume() }
            }
        } onCancelOrGracefulShutdown: { [self] in
            if state.withLock({ $0.close() }) == .leaveGroup { pollQueue.async { self.leaveGroup() } }
        }
    }
}
