import Foundation

/// Reads secrets from the environment or a file, never from the YAML itself.
public struct Secrets: Sendable {
    public let environment: [String: String]

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.environment = environment
    }

    public func value(env: String?, file: String?) -> String? {
        if let env, let value = environment[env], !value.isEmpty { return value }
        if let file, let data = FileManager.default.contents(atPath: file) {
            let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            return text.isEmpty ? nil : text
        }
        return nil
    }
}
