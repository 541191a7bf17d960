import CRdKafka
import ReachCore
import Dispatch
import Logging
import Synchronization

/// A member of a Kafka consumer group.
///
/// Records are pulled through `messages` (an `AsyncSequence`: pulling is the
/// backpressure, nothing is read ahead beyond librdkafka's own fetch buffer).
/// Auto-commit is off: call `commit` with a processed record once its work is
/// durable, and the group resumes after it.
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

    private let handle: RDKafkaHandle
    private let group: GroupState
    private let pollQueue = DispatchQueue(label: "reach.kafka.consumer.poll")
    private let commitQueue = DispatchQueue(label: "reach.kafka.consumer.commit")
    private let closed = Atomic<Bool>(false)
    private let logger: Logger
    public let configuration: Configuration

    public init(configuration: Configuration, logger: Logger = Logger(label: "reach.kafka.consumer")) throws {
        self.configuration = configuration
        self.logger = logger
        let group = GroupState(logger: logger)
        let conf = try RDKafkaConfig.make(configuration.librdkafkaProperties)
        rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(group).toOpaque())
        rd_kafka_conf_set_rebalance_cb(conf) { rk, err, partitions, opaque in
            guard let rk, let opaque else { return }
            let group = Unmanaged<GroupState>.fromOpaque(opaque).takeUnretainedValue()
            group.rebalance(rk, err, partitions)
        }
        let handle = RDKafkaHandle(pointer: try RDKafkaConfig.newHandle(type: RD_KAFKA_CONSUMER, conf: conf))
        rd_kafka_poll_set_consumer(handle.pointer)
        self.handle = handle
        self.group = group

        // With no topics the client only observes (committed offsets, watermarks).
        guard !configuration.topics.isEmpty else { return }
        let subscription = TopicPartitionList(configuration.topics.map { (TopicPartition($0, RD_KAFKA_PARTITION_UA), Int64(0)) })
        let err = rd_kafka_subscribe(handle.pointer, subscription.pointer)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            rd_kafka_destroy(handle.pointer)
            throw KafkaError(code: err, context: "subscribe \(configuration.topics)")
        }
    }

    deinit {
        // No poll block can be running: each holds a reference to `self`.
        if !closed.load(ordering: .acquiring) { rd_kafka_consumer_close(handle.pointer) }
        rd_kafka_destroy(handle.pointer)
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
        let handle = self.handle
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            commitQueue.async {
                let list = TopicPartitionList(nextOffsets.map { ($0.key, $0.value) })
                let err = rd_kafka_commit(handle.pointer, list.pointer, 0)
                if err != RD_KAFKA_RESP_ERR_NO_ERROR {
                    continuation.resume(throwing: KafkaError(code: err, context: "commit"))
                    return
                }
                if let failed = list.entries.first(where: { $0.2 != RD_KAFKA_RESP_ERR_NO_ERROR }) {
                    continuation.resume(throwing: KafkaError(code: failed.2, context: "commit \(failed.0)"))
                    return
                }
                continuation.resume()
            }
        }
    }

    /// The group's committed next-offset for each partition (nil: nothing committed).
    public func committedOffsets(_ partitions: [TopicPartition], timeout: Duration = .seconds(5)) async throws -> [TopicPartition: Int64?] {
        let handle = self.handle
        return try await withCheckedThrowingContinuation { continuation in
            commitQueue.async {
                let list = TopicPartitionList(partitions.map { ($0, Int64(RD_KAFKA_OFFSET_INVALID)) })
                let err = rd_kafka_committed(handle.pointer, list.pointer, Int32(timeout.milliseconds))
                if err != RD_KAFKA_RESP_ERR_NO_ERROR {
                    continuation.resume(throwing: KafkaError(code: err, context: "committed offsets"))
                    return
                }
                var result: [TopicPartition: Int64?] = [:]
                for (tp, offset, _) in list.entries { result[tp] = offset >= 0 ? offset : nil }
                continuation.resume(returning: result)
            }
        }
    }

    /// The (low, high) watermarks of a partition; `high` is the next offset to be written.
    public func watermarks(_ tp: TopicPartition, timeout: Duration = .seconds(2)) async throws -> (low: Int64, high: Int64) {
        let handle = self.handle
        return try await withCheckedThrowingContinuation { continuation in
            commitQueue.async {
                continuation.resume(with: Result { try KafkaMetadata.watermarks(handle, tp, timeout: timeout) })
            }
        }
    }

    /// The partitions of `topic`, from cluster metadata.
    public func partitions(of topic: String, timeout: Duration = .seconds(2)) async throws -> [TopicPartition] {
        let handle = self.handle
        return try await withCheckedThrowingContinuation { continuation in
            commitQueue.async {
                continuation.resume(with: Result {
                    try KafkaMetadata.partitionCount(handle, topic: topic, timeout: timeout)
                }.map { count in (0..<count).map { TopicPartition(topic, $0) } })
            }
        }
    }

    public func checkConnectivity(timeout: Duration = .seconds(2)) throws {
        try KafkaMetadata.check(handle, timeout: timeout)
    }

    /// Leaves the group (handing its partitions to the other members) and stops
    /// delivering records. Commits nothing on its own: commit before closing.
    public func close() async {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let handle = self.handle
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            pollQueue.async {
                rd_kafka_consumer_close(handle.pointer)
                continuation.resume()
            }
        }
        logger.debug("consumer closed", metadata: ["group": "\(configuration.groupID)"])
    }

    /// Polls once (up to 100 ms) and drains what else is ready, up to `max` records.
    fileprivate func pollBatch(max: Int) async throws -> [KafkaMessage] {
        if closed.load(ordering: .acquiring) { return [] }
        let handle = self.handle
        let logger = self.logger
        return try await withCheckedThrowingContinuation { continuation in
            pollQueue.async { [self] in
                if self.closed.load(ordering: .acquiring) { return continuation.resume(returning: []) }
                var batch: [KafkaMessage] = []
                var timeout: Int32 = 100
                while batch.count < max, let raw = rd_kafka_consumer_poll(handle.pointer, timeout) {
                    defer { rd_kafka_message_destroy(raw) }
                    timeout = 0
                    let err = raw.pointee.err
                    if err == RD_KAFKA_RESP_ERR_NO_ERROR {
                        batch.append(KafkaMessage(copying: raw))
                    } else if err == RD_KAFKA_RESP_ERR__PARTITION_EOF {
                        continue
                    } else {
                        var buffer = [CChar](repeating: 0, count: 512)
                        if rd_kafka_fatal_error(handle.pointer, &buffer, buffer.count) != RD_KAFKA_RESP_ERR_NO_ERROR {
                            return continuation.resume(throwing: KafkaError(context: "consume", message: String(nulTerminated: buffer)))
                        }
                        logger.warning("consumer error", metadata: ["error": "\(KafkaError(code: err, context: "consume"))"])
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
                    if Task.isCancelled || consumer.closed.load(ordering: .acquiring) { return nil }
                    let batch = try await consumer.pollBatch(max: max)
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
                    if Task.isCancelled || consumer.closed.load(ordering: .acquiring) { return nil }
                    buffer = try await consumer.pollBatch(max: 256)
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

    func rebalance(_ rk: OpaquePointer, _ err: rd_kafka_resp_err_t, _ partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?) {
        let listed = partitions.map { TopicPartitionList.read($0).map(\.0) } ?? []
        if err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
            rd_kafka_assign(rk, partitions)
            owned.withLock { $0 = Set(listed) }
            logger.info("partitions assigned", metadata: ["partitions": "\(listed.map(\.description).sorted())"])
        } else {
            rd_kafka_assign(rk, nil)
            owned.withLock { $0 = [] }
            logger.info("partitions revoked", metadata: ["partitions": "\(listed.map(\.description).sorted())"])
        }
    }
}
