import Foundation
import Logging
import ReachCore
import Synchronization

/// Structured logs to stderr: one JSON object a line (or `key=value` text).
/// Phone numbers, e-mail addresses, ID and card numbers in the message and metadata are
/// masked (`Redaction.maskText`), and so is anything under a sensitive attribute name
/// (`log.sensitive_keys`).
public struct ReachLogHandler: LogHandler {
    public enum Format: String, Sendable { case json, text }

    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let format: Format
    private let sensitive: SensitiveKeys

    public init(label: String, level: Logger.Level, format: Format, sensitiveKeys: SensitiveKeys = SensitiveKeys(LogSettings.defaultSensitiveKeys)) {
        self.label = label
        self.logLevel = level
        self.format = format
        self.sensitive = sensitiveKeys
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Installs this handler for every logger of the process.
    public static func bootstrap(level: Logger.Level, format: Format, sensitiveKeys: [String] = LogSettings.defaultSensitiveKeys) {
        let keys = SensitiveKeys(sensitiveKeys)
        LoggingSystem.bootstrap { label in ReachLogHandler(label: label, level: level, format: format, sensitiveKeys: keys) }
    }

    func masked(_ text: String) -> String { Redaction.maskText(sensitive.mask(text)) }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        let line = render(level: event.level, message: event.message.description, metadata: merged)
        Self.output.withLock { _ in
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
    }

    func render(level: Logger.Level, message: String, metadata: Logger.Metadata) -> String {
        let timestamp = Date().formatted(.iso8601.year().month().day().timeSeparator(.colon).time(includingFractionalSeconds: true))
        let fields = metadata.sorted { $0.key < $1.key }.map { ($0.key, sensitive.isSensitive($0.key) ? "***" : masked(Self.flatten($0.value))) }
        switch format {
        case .json:
            var out = "{\"ts\":\"\(timestamp)Z\",\"level\":\"\(level.rawValue)\",\"logger\":"
            JSONText.quote(label, into: &out)
            out += ",\"msg\":"
            JSONText.quote(masked(message), into: &out)
            for (key, value) in fields where !["ts", "level", "logger", "msg"].contains(key) {
                out += ","
                JSONText.quote(key, into: &out)
                out += ":"
                JSONText.quote(value, into: &out)
            }
            return out + "}"
        case .text:
            var out = "\(timestamp)Z \(level.rawValue.uppercased()) [\(label)] \(masked(message))"
            for (key, value) in fields { out += " \(key)=\(value.contains(" ") ? JSONText.quote(value) : value)" }
            return out
        }
    }

    private static func flatten(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let s): s
        case .stringConvertible(let c): c.description
        case .array(let a): "[" + a.map(flatten).joined(separator: ", ") + "]"
        case .dictionary(let d): "{" + d.sorted { $0.key < $1.key }.map { "\($0.key): \(flatten($0.value))" }.joined(separator: ", ") + "}"
        }
    }

    private static let output = Mutex<Void>(())
}
