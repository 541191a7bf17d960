import Foundation

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
        let context = ConfigContext(environment: environment)
        var tree = ConfigNode.null
        if let path {
            do {
                tree = try ConfigNode(yaml: try String(contentsOfFile: path, encoding: .utf8))
            } catch let error as CocoaError where error.code == .fileReadNoSuchFile {
                context.problem([], "cannot read \(path): no such file")
            } catch {
                context.problem([], "cannot read \(path): \(error)")
            }
        }
        let configuration = ReachConfiguration.read(tree, [], context) ?? ReachConfiguration()
        configuration.check([], context)
        return (configuration, context.problems)
    }

    /// Like `load`, but throws `ConfigurationError` when anything is wrong.
    public static func loadValid(path: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> ReachConfiguration {
        let (configuration, problems) = load(path: path, environment: environment)
        if !problems.isEmpty { throw ConfigurationError(problems: problems) }
        return configuration
    }
}
