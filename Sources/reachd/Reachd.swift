import ArgumentParser
import Foundation
import Logging
import ReachCore
import ReachKafka
import ReachPostgres
import ReachService
import ServiceLifecycle

@main
struct Reachd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reachd",
        abstract: "Delivery daemon for CRM touch messages.",
        version: ReachVersion.current,
        subcommands: [Serve.self, Migrate.self, ConfigCommand.self, CampaignCommand.self, SegmentCommand.self, TriggerCommand.self,
                      DeadLetterCommand.self, ChannelCommand.self, BenchCommand.self, DevKafka.self, DevProviderCommand.self])
}

/// `--config`, shared by every subcommand.
struct ConfigOption: ParsableArguments {
    @Option(name: .long, help: "YAML configuration file; REACH_* environment variables override its keys.")
    var config: String?

    /// Loads and validates; on problems prints each one and exits 1.
    func load() throws -> ReachConfiguration {
        let (configuration, problems) = ConfigLoader.load(path: config)
        if !problems.isEmpty {
            FileHandle.standardError.write(Data("reachd: configuration has \(problems.count) problem(s):\n".utf8))
            for problem in problems { FileHandle.standardError.write(Data("  \(problem)\n".utf8)) }
            throw ExitCode(1)
        }
        return configuration
    }

    func logger(_ configuration: ReachConfiguration, label: String = "reachd") -> Logger {
        let level = Logger.Level(rawValue: configuration.log.level) ?? .info
        ReachLogHandler.bootstrap(level: level, format: ReachLogHandler.Format(rawValue: configuration.log.format) ?? .json,
                                  sensitiveKeys: configuration.log.sensitiveKeys)
        return Logger(label: label)
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the daemon: HTTP API, metrics and the delivery pipeline.")
    @OptionGroup var options: ConfigOption

    func run() async throws {
        let configuration = try options.load()
        let logger = options.logger(configuration)
        do {
            try await Daemon(configuration: configuration, logger: logger).run()
        } catch {
            logger.critical("reachd failed", metadata: ["error": "\(error)"])
            throw ExitCode(1)
        }
    }
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create or upgrade schema 'reach' in PostgreSQL (idempotent).")
    @OptionGroup var options: ConfigOption

    func run() async throws {
        let configuration = try options.load()
        let logger = options.logger(configuration, label: "reach.migrate")
        var pg = PostgresConfiguration(url: configuration.postgres.url, poolSize: 1)
        pg.connectTimeout = .milliseconds(configuration.postgres.connectTimeoutMs)
        do {
            let outcome = try await Migrator(client: PostgresClient(configuration: pg), logger: logger).run()
            let applied = outcome.applied.isEmpty ? "none (up to date)" : outcome.applied.map(String.init).joined(separator: ", ")
            print("schema reach at version \(outcome.current); applied: \(applied)")
        } catch {
            FileHandle.standardError.write(Data("reachd migrate: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}

struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "config", abstract: "Inspect the configuration.", subcommands: [Check.self, Example.self])

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Validate the configuration; prints every problem with its key path, exits 1 if any.")
        @OptionGroup var options: ConfigOption

        func run() async throws {
            let c = try options.load()
            print("configuration OK")
            print("  kafka.brokers   \(c.kafka.brokers)  (group \(c.kafka.groupID); topics \(c.kafka.topics.all.joined(separator: ", ")))")
            print("  postgres.url    \(Redaction.maskConnectionSecrets(c.postgres.url))")
            print("  redis.url       \(Redaction.maskConnectionSecrets(c.redis.url))  (prefix \(c.redis.prefix))")
            print("  http            \(c.http.host):\(c.http.port)")
            print("  auth.tokens     \(c.auth.tokens.map { "\($0.name)(\($0.scope))" }.joined(separator: ", "))")
            print("  channels        \(c.channels.keys.sorted().map { "\($0)=\(c.channels[$0]!.provider)" }.joined(separator: ", "))")
        }
    }

    struct Example: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print deploy/reachd.example.yaml: every key with its doc and bounds, generated from the key declarations.")

        func run() async throws { print(ConfigSchema.exampleYAML(), terminator: "") }
    }
}

struct DevKafka: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev-kafka",
        abstract: "Run the embedded Kafka broker on its own; prints its bootstrap address as the first line of stdout.",
        discussion: "For development and tests only: it keeps only the most recent few MB of each partition.")
    @OptionGroup var options: ConfigOption
    @Option(help: "Partitions per topic (default: kafka.partitions).") var partitions: Int?

    func run() async throws {
        let c = try options.load()
        let count = partitions ?? c.kafka.partitions
        let broker = try EmbeddedKafka(topics: Dictionary(uniqueKeysWithValues: c.kafka.topics.all.map { ($0, count) }))
        print(broker.bootstrapServers)
        fflush(nil)
        FileHandle.standardError.write(Data("embedded Kafka on \(broker.bootstrapServers); topics \(c.kafka.topics.all.joined(separator: ", ")) with \(count) partitions; Ctrl-C stops it\n".utf8))
        // Runs until SIGINT/SIGTERM, through the same lifecycle as `serve`.
        let group = ServiceGroup(configuration: .init(services: [UntilShutdown()], gracefulShutdownSignals: [.sigterm, .sigint],
                                                      logger: options.logger(c, label: "reach.dev-kafka")))
        try await group.run()
        broker.shutdown()
    }
}

/// A service that only waits for the group's graceful shutdown.
struct UntilShutdown: Service {
    func run() async throws {
        try? await gracefulShutdown()
    }
}
