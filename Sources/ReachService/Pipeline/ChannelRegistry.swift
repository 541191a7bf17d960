import Foundation
import ReachChannels
import ReachCore
import ReachPostgres
import ReachRedis

/// One provider of a channel: what metrics and rows call it, and the strategy that sends to it.
public struct ProviderRoute: Sendable {
    public let name: String
    public let channel: any Channel

    public init(name: String, channel: any Channel) {
        self.name = name
        self.channel = channel
    }
}

/// The configured channels and their policies, built once at start-up.
public struct ChannelRegistry: Sendable {
    /// Each channel's first provider (the only one, unless `providers:` lists several).
    public var channels: [String: any Channel] { routes.compactMapValues { $0.first?.channel } }
    /// Each channel's providers in the order they are tried (priority, then list order).
    public let routes: [String: [ProviderRoute]]
    /// How the pipeline batches, paces and retries each channel's sends.
    public let policies: [String: ChannelPolicy]
    /// Per-user daily cap over all channels (0: none).
    public let capOverall: Int

    /// One provider per channel, named after its kind (`http`, `smtp`, …) or the channel.
    public init(channels: [String: any Channel], policies: [String: ChannelPolicy], capOverall: Int = 0,
                providerNames: [String: String] = [:]) {
        self.init(routes: channels.reduce(into: [:]) { routes, entry in
            routes[entry.key] = [ProviderRoute(name: providerNames[entry.key] ?? entry.key, channel: entry.value)]
        }, policies: policies, capOverall: capOverall)
    }

    public init(routes: [String: [ProviderRoute]], policies: [String: ChannelPolicy], capOverall: Int = 0) {
        self.routes = routes
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
        var routes: [String: [ProviderRoute]] = [:]
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
            if !settings.providers.isEmpty {
                // Failover: every provider an HTTP strategy of its own, in the order they are tried.
                let ordered = settings.providers.enumerated().sorted { ($0.element.priority, $0.offset) < ($1.element.priority, $1.offset) }
                routes[name] = ordered.map { _, p in
                    var auth: (String, String)?
                    if let token = secrets.value(env: p.tokenEnv, file: nil) {
                        auth = (p.authHeader, p.authHeader.lowercased() == "authorization" ? "Bearer \(token)" : token)
                    }
                    return ProviderRoute(name: p.name, channel: HTTPProviderChannel(
                        name: name, url: p.url, authHeader: auth, connections: settings.concurrency, timeout: .milliseconds(settings.timeoutMs)))
                }
                continue
            }
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
        for (name, channel) in channels { routes[name] = [ProviderRoute(name: configuration.channels[name]?.provider ?? name, channel: channel)] }
        return ChannelRegistry(routes: routes, policies: policies, capOverall: configuration.frequencyCap.perDay)
    }

    public func shutdown() async {
        for route in routes.values.joined() { await route.channel.shutdown() }
    }
}
