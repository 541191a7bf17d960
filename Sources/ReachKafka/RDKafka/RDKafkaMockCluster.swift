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

    func destroy() {
        rd_kafka_mock_cluster_destroy(pointer)
        host.destroy()
    }
}
