import Foundation
import ReachChannels
import ReachCore
import ReachPostgres
import ReachRedis

/// The configured channels and their policies, built once at start-up.
public struct ChannelRegistry: Sendable {
    public let channels: [String: any Channel]
    /// How the pipeline batches, paces and retries each channel's sends.
    public let policies: [String: ChannelPolicy]
    /// Per-user daily cap over all channels (0: none).
    public let capOverall: Int

    public init(channels: [String: any Channel], policies: [String: ChannelPolicy], capOverall: Int = 0) {
        self.channels = channels
        self.policies = policies
        self.capOverall = capOverall
    }

    /// The channel's policy (a channel without configuration gets the defaults).
    public func policy(_ channel: String) -> ChannelPolicy {
        policies[channel] ?? ChannelPolicy(name: channel, batchSize: 100, concurrency: 4)
    }

    public var addressFields: [String: AddressField] { policies.mapValues(\.addressField) }
    public var capsPerChannel: [String: Int] { policies.mapValues(\.frequencyCapPerDay).filter { $0.value > 0 } }
    /// The longest time a provider request of any channel can stay on the wire.
    public var longestTimeout: Duration { policies.values.map(\.timeout).max() ?? .seconds(5) }

    var hasCaps: Bool { capOverall > 0 || !capsPerChannel.isEmpty }

    public func retryPolicy(_ channel: String) -> RetryPolicy { policy(channel).retry }

    public struct Unsupported: Error, CustomStringConvertible {
        public let description: String
    }

    public static func make(configuration: ReachConfiguration, postgres: PostgresClient, redis: RedisClient,
                            secrets: Secrets = Secrets()) throws -> ChannelRegistry {
        var channels: [String: any Channel] = [:]
        var policies: [String: ChannelPolicy] = [:]
        for (name, settings) in configuration.channels {
            policies[name] = ChannelPolicy(
                name: name, batchSize: settings.batchSize, concurrency: settings.concurrency, ratePerSecond: settings.ratePerSecond,
                frequencyCapPerDay: settings.frequencyCapPerDay,
                retry: RetryPolicy(maxAttempts: settings.retry.maxAttempts, base: .milliseconds(settings.retry.baseMs),
                                   max: .milliseconds(settings.retry.maxMs)),
                timeout: .milliseconds(settings.timeoutMs), addressField: settings.address.flatMap(AddressField.init(rawValue:)),
                breaker: .init(failureRate: settings.circuitBreaker.failureRate, window: .seconds(settings.circuitBreaker.windowSeconds),
                               minimumCalls: settings.circuitBreaker.minimumCalls, coolDown: .milliseconds(settings.circuitBreaker.coolDownMs)))
            switch settings.provider {
            case "http":
                var auth: (String, String)?
                if let token = secrets.value(env: settings.tokenEnv, file: nil) {
                    auth = (settings.authHeader, settings.authHeader.lowercased() == "authorization" ? "Bearer \(token)" : token)
                }
                channels[name] = HTTPProviderChannel(
                    name: name, url: settings.url ?? "", authHeader: auth, connections: settings.concurrency,
                    timeout: .milliseconds(settings.timeoutMs))
            case "smtp":
                let smtp = SMTPChannel.Settings(
                    host: settings.host ?? "", port: settings.port, from: settings.from ?? "",
                    username: secrets.value(env: settings.usernameEnv, file: nil),
                    password: secrets.value(env: settings.passwordEnv, file: settings.passwordFile),
                    startTLS: settings.starttls, verifyCertificates: settings.tlsVerify, timeout: .milliseconds(settings.timeoutMs))
                channels[name] = try SMTPChannel(name: name, settings: smtp)
            case "inbox":
                channels[name] = InboxChannel(name: name, backend: InboxWiring(postgres: postgres, redis: redis, prefix: configuration.redis.prefix))
            case "log":
                channels[name] = try LogChannel(name: name, path: settings.path ?? "reach-\(name).jsonl")
            default:
                throw Unsupported(description: "channels.\(name): unknown provider '\(settings.provider)'")
            }
        }
        return ChannelRegistry(channels: channels, policies: policies, capOverall: configuration.frequencyCap.perDay)
    }

    public func shutdown() async {
        for channel in channels.values { await channel.shutdown() }
    }
}
