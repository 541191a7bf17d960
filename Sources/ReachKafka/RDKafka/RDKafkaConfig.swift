import CRdKafka
import Logging

/// Builds a `rd_kafka_conf_t` from string properties. Property values never
/// appear in errors (they may hold credentials); names do.
enum RDKafkaConfig {
    static func make(_ properties: [String: String]) throws -> OpaquePointer {
        guard let conf = rd_kafka_conf_new() else {
            throw KafkaError(context: "configuration", message: "rd_kafka_conf_new failed")
        }
        rd_kafka_conf_set_log_cb(conf) { _, level, facility, message in
            LibrdkafkaLog.emit(level: level, facility: facility, message: message)
        }
        var errorBuffer = [CChar](repeating: 0, count: 512)
        for (name, value) in properties.sorted(by: { $0.key < $1.key }) {
            let result = rd_kafka_conf_set(conf, name, value, &errorBuffer, errorBuffer.count)
            if result != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(conf)
                throw KafkaError(context: "configuration", message: "property \(name): \(String(nulTerminated: errorBuffer))")
            }
        }
        return conf
    }

    /// `rd_kafka_new`; takes ownership of `conf` on success, destroys it on failure.
    static func newHandle(type: rd_kafka_type_t, conf: OpaquePointer) throws -> OpaquePointer {
        var errorBuffer = [CChar](repeating: 0, count: 512)
        guard let handle = rd_kafka_new(type, conf, &errorBuffer, errorBuffer.count) else {
            rd_kafka_conf_destroy(conf)
            throw KafkaError(context: "create client", message: String(nulTerminated: errorBuffer))
        }
        return handle
    }
}

extension String {
    /// The text of a C buffer up to its first NUL.
    init(nulTerminated buffer: [CChar]) {
        self = String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// librdkafka's own log lines, routed into swift-log (label `reach.kafka.librdkafka`).
enum LibrdkafkaLog {
    static let logger = Logger(label: "reach.kafka.librdkafka")

    static func emit(level: Int32, facility: UnsafePointer<CChar>?, message: UnsafePointer<CChar>?) {
        let swiftLevel: Logger.Level = switch level {
        case ...2: .critical
        case 3: .error
        case 4: .warning
        case 5: .notice
        case 6: .info
        default: .debug
        }
        let text = message.map { String(cString: $0) } ?? ""
        let source = facility.map { String(cString: $0) } ?? ""
        logger.log(level: swiftLevel, "\(text)", metadata: ["facility": "\(source)"])
    }
}
