import Foundation

/// Runs librdkafka's blocking teardown (`rd_kafka_consumer_close`, flush,
/// `rd_kafka_destroy`) on a thread of its own.
///
/// A `deinit` runs on whatever thread drops the last reference, often one of
/// Swift's few cooperative threads. Closing a consumer whose coordinator is
/// gone or slow waits for its requests to time out (seen: 8–16 s), and a
/// cooperative thread held that long stalls every task of the process. So
/// the deinits hand their teardown here and return at once; explicit calls
/// (`KafkaConsumer.close`, `EmbeddedKafka.shutdown`) still finish before they return.
enum Teardown {
    static func detach(_ name: String, _ work: @escaping @Sendable () -> Void) {
        let thread = Thread { work() }
        thread.name = name
        thread.start()
    }
}
