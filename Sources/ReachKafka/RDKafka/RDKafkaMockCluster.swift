import CRdKafka

/// librdkafka's mock cluster and the client that hosts it; destroyed once, by its owner.
struct RDKafkaMockCluster: @unchecked Sendable {
    private let host: RDKafkaClient
    private let pointer: OpaquePointer

    init(brokers: Int) throws {
        let host = try RDKafkaClient.plainProducer(properties: ["log_level": "3"])
        guard let cluster = rd_kafka_mock_cluster_new(host.pointer, Int32(brokers)) else {
            host.destroy()
            throw KafkaError(context: "embedded broker", message: "could not start the mock cluster")
        }
        self.host = host
        self.pointer = cluster
    }

    var bootstrapServers: String { String(cString: rd_kafka_mock_cluster_bootstraps(pointer)) }

    func createTopic(_ name: String, partitions: Int) throws {
        let err = rd_kafka_mock_topic_create(pointer, name, Int32(partitions), 1)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(code: err, context: "create topic \(name)") }
    }

    /// The next requests of API `apiKey` (e.g. 8, OffsetCommit) fail with `codes`, in order, one each.
    func failRequests(apiKey: Int16, codes: [Int32]) {
        var errors = codes.map { rd_kafka_resp_err_t(rawValue: $0) }
        errors.withUnsafeMutableBufferPointer {
            rd_kafka_mock_push_request_errors_array(pointer, apiKey, $0.count, $0.baseAddress)
        }
    }

    func destroy() {
        rd_kafka_mock_cluster_destroy(pointer)
        host.destroy()
    }
}
