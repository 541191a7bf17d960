import Foundation
import ReachCore
import ReachRedis

/// Thrown when the configuration has problems; lists every one of them.
public struct ConfigurationError: Error, CustomStringConvertible {
    public let problems: [ConfigProblem]
    public var description: String {
        "configuration has \(problems.count) problem(s):\n" + problems.map { "  - \($0)" }.joined(separator: "\n")
    }
}

public enum ConfigLoader {
    /// Reads the YAML file (if any), applies `REACH_*` overrides and validates.
    /// Returns the configuration and every problem found (empty when valid).
    public static func load(path: String?, environment: [String: String] = ProcessInfo.processInfo.environment) -> (ReachConfiguration, [ConfigProblem]) {
        var problems: [ConfigProblem] = []
        var tree = ConfigNode.null
        if let path {
            do {
                let text = try String(contentsOfFile: path, encoding: .utf8)
                tree = try ConfigNode(yaml: text)
            } catch let error as CocoaError where error.code == .fileReadNoSuchFile {
                problems.append(ConfigProblem("", "cannot read \(path): no such file"))
            } catch {
                problems.append(ConfigProblem("", "cannot read \(path): \(error)"))
            }
        }
        let decoding = ConfigDecoding(environment: environment)
        var configuration = ReachConfiguration()
        do {
            configuration = try decoding.decode(ReachConfiguration.self, from: tree)
        } catch {
            problems.append(ConfigProblem("", "\(error)"))
        }
        problems += decoding.problems
        problems += ConfigValidator(environment: environment).problems(in: configuration)
        return (configuration, problems)
    }

    /// Like `load`, but throws `ConfigurationError` when anything is wrong.
    public static func loadValid(path: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> ReachConfiguration {
        let (configuration, problems) = load(path: path, environment: environment)
        if !problems.isEmpty { throw ConfigurationError(problems: problems) }
        return configuration
    }
}
