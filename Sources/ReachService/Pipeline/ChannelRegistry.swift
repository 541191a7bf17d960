import Foundation
import ReachChannels
import ReachCore
import ReachPostgres
import ReachRedis

/// The configured channels, built once at start-up.
public struct ChannelRegistry: Sendable {
    public let channels: [String: any Channel]
    public let addressFields: [String: AddressField]
    public let retryPolicies: [String: RetryPolicy]
    /// Messages per second, cluster-wide, for channels that have a limit.
    public let rates: [String: Int]
    /// Per-user daily caps: per channel, and over all channels (0: none).
    public let capsPerChannel: [String: Int]
    public let capOverall: Int
    /// Each channel's provider time-out: how long a request can stay on the wire.
    public let timeouts: [String: Duration]

    public init(channels: [String: any Channel], addressFields: [String: AddressField] = [:], retryPolicies: [String: RetryPolicy] = [:],
                rates: [String: Int] = [:], capsPerChannel: [String: Int] = [:], capOverall: Int = 0, timeouts: [String: Duration] = [:]) {
        self.timeouts = timeouts
        self.channels = channels
        self.addressFields = addressFields
        self.retryPolicies = retryPolicies
        self.rates = rates
        self.capsPerChannel = capsPerChannel
        self.capOverall = capOverall
    }

    /// The longest time a provider request of any channel can stay on the wire.
    public var longestTimeout: Duration { timeouts.values.max() ?? .seconds(5) }

    var hasCaps: Bool { capOverall > 0 || capsPerChannel.values.contains { $0 > 0 } }

    public func retryPolicy(_ channel: String) -> RetryPolicy {
        retryPolicies[channel] ?? RetryPolicy(maxAttempts: 4, base: .milliseconds(500), max: .seconds(60))
    }

    public struct Unsupported: Error, CustomStringConvertible {
        public let description: String
    }

    public static func make(configuration: ReachConfiguration, postgres: PostgresClient, redis: RedisClient,
                            secrets: Secrets = Secrets()) throws -> ChannelRegistry {
        var channels: [String: any Channel] = [:]
        var fields: [String: AddressField] = [:]
        var policies: [String: RetryPolicy] = [:]
        for (name, settings) in configuration.channels {
            policies[name] = RetryPolicy(maxAttempts: settings.retry.maxAttempts, base: .milliseconds(settings.retry.baseMs),
                                         max: .milliseconds(settings.retry.maxMs))
            fields[name] = settings.address.flatMap(AddressField.init(rawValue:)) ?? AddressField.defaultField(forChannel: name)
            switch settings.provider {
            case "http":
                var auth: (String, String)?
                if let token = secrets.value(env: settings.tokenEnv, file: nil) {
                    auth = (settings.authHeader, settings.authHeader.lowercased() == "authorization" ? "Bearer \(token)" : token)
                }
                channels[name] = HTTPProviderChannel(
                    name: name, url: settings.url ?? "", authHeader: auth, batchSize: settings.batchSize,
                    concurrency: settings.concurrency, timeout: .milliseconds(settings.timeoutMs))
            case "smtp":
                let smtp = SMTPChannel.Settings(
                    host: settings.host ?? "", port: settings.port, from: settings.from ?? "",
                    username: secrets.value(env: settings.usernameEnv, file: nil),
                    password: secrets.value(env: settings.passwordEnv, file: settings.passwordFile),
                    startTLS: settings.starttls, verifyCertificates: settings.tlsVerify, timeout: .milliseconds(settings.timeoutMs))
                channels[name] = try SMTPChannel(name: name, settings: smtp, batchSize: settings.batchSize, concurrency: settings.concurrency)
            case "inbox":
                channels[name] = InboxChannel(name: name, backend: InboxWiring(postgres: postgres, redis: redis, prefix: configuration.redis.prefix),
                                              batchSize: settings.batchSize, concurrency: settings.concurrency)
            case "log":
                channels[name] = try LogChannel(name: name, path: settings.path ?? "reach-\(name).jsonl",
                                                batchSize: settings.batchSize, concurrency: settings.concurrency)
            default:
                throw Unsupported(description: "channels.\(name): unknown provider '\(settings.provider)'")
            }
        }
        return ChannelRegistry(
            channels: channels, addressFields: fields, retryPolicies: policies,
            rates: configuration.channels.compactMapValues(\.ratePerSecond),
            capsPerChannel: configuration.channels.mapValues(\.frequencyCapPerDay).filter { $0.value > 0 },
            capOverall: configuration.frequencyCap.perDay,
            timeouts: configuration.channels.mapValues { .milliseconds($0.timeoutMs) })
    }

    public func shutdown() async {
        for channel in channels.values { await channel.shutdown() }
    }
}
