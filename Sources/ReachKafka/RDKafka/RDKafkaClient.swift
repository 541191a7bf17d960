import CRdKafka
import ReachCore

/// A librdkafka client (`rd_kafka_t`) and the calls the Swift-facing types make
/// on it. The handle may be shared across threads (librdkafka's `rd_kafka_t` is
/// thread-safe); its owner destroys it exactly once.
struct RDKafkaClient: @unchecked Sendable {
    let pointer: OpaquePointer

    /// A consumer whose rebalances `group` follows. librdkafka holds `group`
    /// unretained: the caller keeps it alive as long as the client.
    static func consumer(properties: [String: String], group: GroupState) throws -> RDKafkaClient {
        let conf = try RDKafkaConfig.make(properties)
        rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(group).toOpaque())
        rd_kafka_conf_set_rebalance_cb(conf) { rk, err, partitions, opaque in
            guard let rk, let opaque else { return }
            let group = Unmanaged<GroupState>.fromOpaque(opaque).takeUnretainedValue()
            let listed = partitions.map { TopicPartitionList.read($0).map(\.0) } ?? []
            if err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
                rd_kafka_assign(rk, partitions)
                group.assigned(listed)
            } else {
                rd_kafka_assign(rk, nil)
                group.revoked(listed)
            }
        }
        let client = RDKafkaClient(pointer: try RDKafkaConfig.newHandle(type: RD_KAFKA_CONSUMER, conf: conf))
        rd_kafka_poll_set_consumer(client.pointer)
        return client
    }

    /// A producer whose delivery reports complete the waiters in `reports`
    /// (held unretained, like the consumer's group).
    static func producer(properties: [String: String], reports: DeliveryReports) throws -> RDKafkaClient {
        let conf = try RDKafkaConfig.make(properties)
        rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(reports).toOpaque())
        rd_kafka_conf_set_dr_msg_cb(conf) { _, message, opaque in
            guard let message, let opaque else { return }
            let reports = Unmanaged<DeliveryReports>.fromOpaque(opaque).takeUnretainedValue()
            let m = message.pointee
            let id = UInt(bitPattern: m._private)
            if m.err == RD_KAFKA_RESP_ERR_NO_ERROR {
                let topic = String(cString: rd_kafka_topic_name(m.rkt))
                reports.complete(id, with: .success(KafkaDeliveryReport(topic: topic, partition: m.partition, offset: m.offset)))
            } else {
                reports.complete(id, with: .failure(KafkaError(code: m.err, context: "delivery")))
            }
        }
        return RDKafkaClient(pointer: try RDKafkaConfig.newHandle(type: RD_KAFKA_PRODUCER, conf: conf))
    }

    /// A producer with no callbacks (the mock cluster's host).
    static func plainProducer(properties: [String: String]) throws -> RDKafkaClient {
        RDKafkaClient(pointer: try RDKafkaConfig.newHandle(type: RD_KAFKA_PRODUCER, conf: try RDKafkaConfig.make(properties)))
    }

    func destroy() { rd_kafka_destroy(pointer) }

    // MARK: consumer

    func subscribe(_ topics: [String]) throws {
        let subscription = TopicPartitionList(topics.map { (TopicPartition($0, RD_KAFKA_PARTITION_UA), Int64(0)) })
        let err = rd_kafka_subscribe(pointer, subscription.pointer)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(code: err, context: "subscribe \(topics)") }
    }

    /// What one consumer poll returned.
    enum PollEvent {
        case message(KafkaMessage)
        case partitionEOF
        case error(KafkaError)
    }

    /// The next record or event of the consumer queue, waiting up to `timeoutMs`; nil when none came.
    func consumerPoll(timeoutMs: Int32) -> PollEvent? {
        guard let raw = rd_kafka_consumer_poll(pointer, timeoutMs) else { return nil }
        defer { rd_kafka_message_destroy(raw) }
        let err = raw.pointee.err
        if err == RD_KAFKA_RESP_ERR_NO_ERROR { return .message(KafkaMessage(copying: raw)) }
        if err == RD_KAFKA_RESP_ERR__PARTITION_EOF { return .partitionEOF }
        return .error(KafkaError(code: err, context: "consume"))
    }

    /// The text of the client's fatal error, when it has one (the client is unusable then).
    func fatalErrorMessage() -> String? {
        var buffer = [CChar](repeating: 0, count: 512)
        guard rd_kafka_fatal_error(pointer, &buffer, buffer.count) != RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
        return String(nulTerminated: buffer)
    }

    /// Commits the given next-offsets synchronously; throws on the call's or any partition's error.
    func commit(_ nextOffsets: [TopicPartition: Int64]) throws {
        let list = TopicPartitionList(nextOffsets.map { ($0.key, $0.value) })
        let err = rd_kafka_commit(pointer, list.pointer, 0)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(code: err, context: "commit") }
        if let failed = list.entries.first(where: { $0.2 != RD_KAFKA_RESP_ERR_NO_ERROR }) {
            throw KafkaError(code: failed.2, context: "commit \(failed.0)")
        }
    }

    /// The group's committed next-offset for each partition (nil: nothing committed).
    func committed(_ partitions: [TopicPartition], timeout: Duration) throws -> [TopicPartition: Int64?] {
        let list = TopicPartitionList(partitions.map { ($0, Int64(RD_KAFKA_OFFSET_INVALID)) })
        let err = rd_kafka_committed(pointer, list.pointer, Int32(timeout.milliseconds))
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(code: err, context: "committed offsets") }
        var result: [TopicPartition: Int64?] = [:]
        for (tp, offset, _) in list.entries { result[tp] = offset >= 0 ? offset : nil }
        return result
    }

    /// Leaves the group; blocks until librdkafka has done so.
    func consumerClose() { rd_kafka_consumer_close(pointer) }

    // MARK: producer

    /// Serves queued callbacks (delivery reports), waiting up to `timeoutMs`.
    func poll(timeoutMs: Int32) { rd_kafka_poll(pointer, timeoutMs) }

    /// Waits until every queued record was acknowledged or failed.
    func flush(timeout: Duration) throws {
        let err = rd_kafka_flush(pointer, Int32(timeout.milliseconds))
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(code: err, context: "flush") }
    }
}
