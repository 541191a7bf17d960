import Foundation
import ReachCore
import ReachRedis

/// Everything `reachd` reads from `--config` and `REACH_*` variables (SPEC §9).
/// Every key has a default that works for the local stack. Each settings struct
/// declares its keys once, in `keys`: YAML name, property (type and default),
/// doc and rule; reading, overrides, checks and the example file come from there.
public struct ReachConfiguration: ConfigSection, Sendable {
    public var kafka = KafkaSettings()
    public var postgres = PostgresSettings()
    public var redis = RedisSettings()
    public var http = HTTPSettings()
    public var auth = AuthSettings()
    public var quietHours = QuietHoursSettings()
    public var channels: [String: ChannelSettings] = [:]
    public var shutdown = ShutdownSettings()
    public var log = LogSettings()
    public var pipeline = PipelineSettings()
    public var frequencyCap = FrequencyCapSettings()
    public init() {}

    static var keys: [Key<Self>] {[
        Key("kafka", \.kafka, ""), Key("postgres", \.postgres, ""), Key("redis", \.redis, ""), Key("http", \.http, "The HTTP API and metrics."),
        Key("auth", \.auth, ""),
        Key("quiet_hours", \.quietHours, "The daily window in which sends are deferred, in each user's time zone; start equal to end turns it off."),
        Key("shutdown", \.shutdown, ""),
        Key("frequency_cap", \.frequencyCap, "At most per_day messages per user over any rolling 24 hours, all channels together."),
        Key("pipeline", \.pipeline, "How campaigns are run."), Key("log", \.log, ""),
        Key("channels", \.channels, "Channels by name (letters, digits, '_' and '-'): a provider and its limits."),
    ]}

    func validate(_ path: [String], _ c: ConfigContext) {
        for name in channels.keys.sorted() where name.isEmpty || !name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }) {
            c.problem(["channels", name], "channel names use letters, digits, '_' and '-'")
        }
    }
}

public struct FrequencyCapSettings: ConfigSection, Sendable {
    public var perDay = 0
    public init() {}
    static var keys: [Key<Self>] {[
        Key("per_day", \.perDay, "Messages per user per rolling day over all channels; channels may add frequency_cap_per_day.", .orMore("none")),
    ]}
}

public struct PipelineSettings: ConfigSection, Sendable {
    public var pageSize = 5_000, pagesInFlight = 3
    public var leaseMs = 15_000, pollIntervalMs = 500, maxCampaigns = 2
    public var shards = 8, shardMinRecipients = 50_000
    public var inFlightTTLMs = 60_000, sentTTLHours = 168, delayQueueShards = 4
    public init() {}
    static var keys: [Key<Self>] {[
        Key("page_size", \.pageSize, "Recipients read from PostgreSQL per keyset page (and per checkpoint).", .range(1...50_000)),
        Key("pages_in_flight", \.pagesInFlight, "Pages of one campaign decided and sent at once; rows and checkpoints are still written in page order.", .range(1...16)),
        Key("lease_ms", \.leaseMs, "A runner's hold on a campaign; another instance takes over a campaign whose lease ran out.", .atLeast(1_000)),
        Key("poll_interval_ms", \.pollIntervalMs, "How often an idle instance looks for due or orphaned campaigns.", .positive),
        Key("max_campaigns", \.maxCampaigns, "Campaign runs one instance works at once (a whole campaign, or one shard of a campaign cut into shards).", .range(1...64)),
        Key("shards", \.shards, "Most shards a campaign's segment is cut into when it starts; every instance can work a shard (1: never cut).", .range(1...256)),
        Key("shard_min_recipients", \.shardMinRecipients, "Fewest users per shard: a campaign is cut only into shards of at least this many (smaller ones run as one piece).", .atLeast(1)),
        Key("in_flight_ttl_ms", \.inFlightTTLMs, "Unused: a claim no longer writes a key (only sent marks are kept); accepted so older files load.", .atLeast(1_000)),
        Key("sent_ttl_hours", \.sentTTLHours, "How long an idempotency key's \"sent\" mark is kept.", .atLeast(1)),
        Key("delay_queue_shards", \.delayQueueShards, "Shards of the Redis delay queue (each its own hash tag / cluster slot).", .range(1...256)),
    ]}
}

public struct KafkaSettings: ConfigSection, Sendable {
    public var brokers = "embedded", groupID = "reachd", topics = TopicNames(), partitions = 4
    public var properties: [String: String] = [:], consumerProperties: [String: String] = [:]
    public var dlqMaxBytes = 900_000
    public init() {}
    public var isEmbedded: Bool { brokers == "embedded" }

    static var keys: [Key<Self>] {[
        Key("brokers", \.brokers, "host:port[,host:port…], or embedded for the in-process broker.",
            Rule { $0.isEmpty ? "must be host:port[,host:port…] or 'embedded'" : nil }),
        Key("group_id", \.groupID, "The consumer group of every instance.", .nonEmpty),
        Key("topics", \.topics, ""),
        Key("partitions", \.partitions, "Partitions of each topic the embedded broker creates.", .range(1...1000)),
        Key("properties", \.properties, "Extra librdkafka properties for every client (e.g. security.protocol); values may not hold secrets."),
        Key("consumer_properties", \.consumerProperties, "Extra librdkafka properties for the consumers only (e.g. fetch.wait.max.ms), over properties."),
        Key("dlq_max_bytes", \.dlqMaxBytes, "The largest dead letter published, in bytes; a bigger one is cut to fit (marked; the table keeps it whole).", .range(16_384...1_000_000_000, " (bytes; keep it under the broker's message.max.bytes)")),
    ]}

    func validate(_ path: [String], _ c: ConfigContext) {
        for broker in isEmbedded ? [] : brokers.split(separator: ",") {
            let parts = broker.trimmingCharacters(in: .whitespaces).split(separator: ":")
            if !(parts.count >= 2 && Int(parts.last!).map { (1...65535).contains($0) } == true) { c.problem(path + ["brokers"], "'\(broker)' is not host:port") }
        }
        for (section, map) in [("properties", properties), ("consumer_properties", consumerProperties)] {
            for name in map.keys.sorted() where name.contains("password") || name.contains("secret") {
                c.problem(path + [section, name], "secrets may not be set in configuration; use the environment")
            }
        }
    }
}

public struct TopicNames: ConfigSection, Sendable {
    public var tasks = "reach.tasks", events = "reach.events", dlq = "reach.dlq"
    public init() {}
    public var all: [String] { [tasks, events, dlq] }

    static var topic: Rule<String> { Rule { s in
        let ok = !s.isEmpty && s.count <= 249 && s != "." && s != ".."
            && s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "_" || $0 == "-") }
        return ok ? nil : "'\(s)' is not a valid topic name"
    } }
    static var keys: [Key<Self>] {[
        Key("tasks", \.tasks, "Campaign tasks are read from here.", topic), Key("events", \.events, "Delivery events are published here.", topic),
        Key("dlq", \.dlq, "Dead letters are published here.", topic),
    ]}

    func validate(_ path: [String], _ c: ConfigContext) {
        if Set(all).count != 3 { c.problem(path, "tasks, events and dlq must be three different topics") }
    }
}

public struct PostgresSettings: ConfigSection, Sendable {
    public var url = "postgresql://reach@127.0.0.1:5432/reach"
    public var poolSize = 4, connectTimeoutMs = 5_000, queryTimeoutMs = 30_000
    public init() {}
    static var keys: [Key<Self>] {[
        Key("url", \.url, "A libpq URL or connection string; put a password here only through REACH_POSTGRES_URL.", Rule {
            $0.hasPrefix("postgresql://") || $0.hasPrefix("postgres://") || $0.contains("=") ? nil : "must be a postgresql:// URL or a libpq connection string"
        }),
        Key("pool_size", \.poolSize, "Connections of the pipeline's pool.", .range(1...256)),
        Key("connect_timeout_ms", \.connectTimeoutMs, "", .atLeast(1000)),
        Key("query_timeout_ms", \.queryTimeoutMs, "", .positive),
    ]}
}

public struct RedisSettings: ConfigSection, Sendable {
    public var url = "redis://127.0.0.1:6379/0", prefix = "reach:"
    public var poolSize = 4, timeoutMs = 5_000
    public init() {}
    static var keys: [Key<Self>] {[
        Key("url", \.url, "redis://[:password@]host:port/db, or redis+cluster://[:password@]host1:port1,host2:port2 for a Redis Cluster (database 0 only) (or ?password=); put a password here only through REACH_REDIS_URL.", Rule {
            do { _ = try RedisConfiguration(url: $0); return nil } catch { return "\(error)" }
        }),
        Key("prefix", \.prefix, "Put before every key reachd writes.", Rule {
            $0.contains("{") || $0.contains("}") ? "may not contain '{' or '}' (reserved for hash tags)" : nil
        }),
        Key("pool_size", \.poolSize, "", .range(1...256)), Key("timeout_ms", \.timeoutMs, "How long one Redis command may take.", .positive),
    ]}
}

public struct HTTPSettings: ConfigSection, Sendable {
    public var host = "0.0.0.0", port = 8080, maxBodyBytes = 1_048_576
    public var tokenRatePerSecond = 50, tokenBurst = 100
    public var previewTimeoutMs = 5_000, postgresPoolSize = 2
    public init() {}
    static var keys: [Key<Self>] {[
        Key("host", \.host, "", .nonEmpty), Key("port", \.port, "", .range(0...65535)),
        Key("max_body_bytes", \.maxBodyBytes, "The largest /v1 request body, in bytes (413 above it).", .atLeast(1024)),
        Key("token_rate_per_second", \.tokenRatePerSecond, "Requests per second each API token may make on one instance.", .orMore("no limit")),
        Key("token_burst", \.tokenBurst, "The burst above that rate (429 past it).", .atLeast(1)),
        Key("preview_timeout_ms", \.previewTimeoutMs, "How long POST /v1/segments/preview may count before PostgreSQL stops it.", .atLeast(100)),
        Key("postgres_pool_size", \.postgresPoolSize, "Connections of the API's own PostgreSQL pool, apart from the pipeline's.", .atLeast(1)),
    ]}
}

public struct AuthSettings: ConfigSection, Sendable {
    public var tokens: [TokenSettings] = []
    public init() {}
    static var keys: [Key<Self>] {[Key("tokens", \.tokens, "API tokens; a token's secret comes only from token_env or token_file.")]}

    func validate(_ path: [String], _ c: ConfigContext) {
        var names: Set<String> = []
        for (i, token) in tokens.enumerated() where !names.insert(token.name).inserted && !token.name.isEmpty {
            c.problem([TokenSettings].item(path + ["tokens"], i) + ["name"], "'\(token.name)' is used twice")
        }
    }
}

/// An API token: its secret comes only from `token_env` or `token_file`.
public struct TokenSettings: ConfigSection, Sendable {
    public var name = "", scope = "read"
    public var tokenEnv: String?, tokenFile: String?

    init() {}
    public init(name: String, scope: String, tokenEnv: String? = nil, tokenFile: String? = nil) {
        self.name = name
        self.scope = scope
        self.tokenEnv = tokenEnv
        self.tokenFile = tokenFile
    }

    static var keys: [Key<Self>] {[
        Key("name", \.name, "Names the caller in errors, the audit log and the rate limit; unique.", .nonEmpty),
        Key("scope", \.scope, "read: the routes that only read; write: every route.", .oneOf(["read", "write"], got: true)),
        Key("token_env", \.tokenEnv, "The environment variable holding the token."),
        Key("token_file", \.tokenFile, "The file holding the token (when token_env is unset or empty)."),
    ]}

    func validate(_ path: [String], _ c: ConfigContext) {
        if tokenEnv == nil && tokenFile == nil {
            c.problem(path, "needs token_env or token_file (tokens are never written in the file)")
        } else if Secrets(environment: c.environment).value(env: tokenEnv, file: tokenFile) == nil {
            c.problem(path, (tokenEnv.map { "environment variable \($0)" } ?? "file \(tokenFile!)") + " is not set or empty")
        }
    }
}

public struct QuietHoursSettings: ConfigSection, Sendable {
    public var start = "21:00", end = "08:00", defaultTimezone = "Asia/Shanghai"
    public init() {}

    static var clock: Rule<String> { .must("HH:MM", got: true) { s in
        let parts = s.split(separator: ":").map { $0.count == 2 ? Int($0) : nil }
        return parts.count == 2 && (0...23).contains(parts[0] ?? -1) && (0...59).contains(parts[1] ?? -1)
    } }
    static var keys: [Key<Self>] {[
        Key("start", \.start, "", clock), Key("end", \.end, "", clock),
        Key("default_timezone", \.defaultTimezone, "For users without a time zone.", Rule {
            TimeZone(identifier: $0) == nil ? "unknown time zone '\($0)'" : nil
        }),
    ]}
}

public struct ShutdownSettings: ConfigSection, Sendable {
    public var gracePeriodMs = 15_000
    public init() {}
    static var keys: [Key<Self>] {[Key("grace_period_ms", \.gracePeriodMs, "How long SIGTERM/SIGINT may take before remaining work is cancelled.", .positive)]}
}

public struct LogSettings: ConfigSection, Sendable {
    public static let defaultSensitiveKeys = ["id_number", "id_card", "national_id", "ssn", "passport", "card_number", "bank_card",
                                              "bank_account", "iban"]
    public var level = "info", format = "json"
    public var sensitiveKeys = LogSettings.defaultSensitiveKeys
    public init() {}
    static var keys: [Key<Self>] {[
        Key("level", \.level, "", .oneOf(["trace", "debug", "info", "notice", "warning", "error", "critical"])),
        Key("format", \.format, "json: one object a line; text: for humans.", .oneOf(["json", "text"])),
        Key("sensitive_keys", \.sensitiveKeys,
            "Attribute names whose values never reach a log line (JSON members, key=value text, metadata keys); phones, e-mails, ID and card numbers are masked anyway."),
    ]}
}

/// One channel's provider and limits. Which keys matter depends on `provider`:
/// `http` (url, auth), `smtp` (host, port, from, credentials), `inbox`, `log` (path).
public struct ChannelSettings: ConfigSection, Sendable {
    public var provider = "log"
    public var url: String?, authHeader = "Authorization", tokenEnv: String?
    public var host: String?, port = 587, from: String?, usernameEnv: String?, passwordEnv: String?, passwordFile: String?
    public var starttls = "auto", tlsVerify = true
    public var path: String?, address: String?
    public var batchSize = 100, concurrency = 4, ratePerSecond: Int?, frequencyCapPerDay = 0, timeoutMs = 3_000
    public var retry = RetrySettings(), circuitBreaker = CircuitBreakerSettings()
    /// More than one HTTP provider, tried in `priority` order, each with its own breaker (failover).
    public var providers: [ProviderSettings] = []
    public init() {}

    static let providers = ["http", "inbox", "log", "smtp"]
    static var keys: [Key<Self>] {[
        Key("provider", \.provider, "", .must("one of \(providers.joined(separator: ", "))", got: true) { providers.contains($0) }),
        Key("url", \.url, "http: where requests are sent (http:// or https://)."),
        Key("auth_header", \.authHeader, "http: the header that carries the token."), Key("token_env", \.tokenEnv, "http: the environment variable holding the token."),
        Key("host", \.host, "smtp: the server."), Key("port", \.port, "smtp: the server's port.", .range(1...65535)),
        Key("from", \.from, "smtp: the sender address."), Key("username_env", \.usernameEnv, "smtp: the environment variable holding the user name."),
        Key("password_env", \.passwordEnv, "smtp: the environment variable holding the password."),
        Key("password_file", \.passwordFile, "smtp: the file holding the password."),
        Key("starttls", \.starttls, "smtp: whether to use STARTTLS.", .oneOf(["auto", "require", "off"])),
        Key("tls_verify", \.tlsVerify, "smtp: verify the server's TLS certificate (turn off only for test servers)."),
        Key("path", \.path, "log: the JSON-lines file (default reach-<name>.jsonl)."),
        Key("address", \.address, "The recipient field sent to (default: SPEC §6's field for sms/email/push, else user_id).",
            .oneOf(AddressField.allCases.map(\.rawValue))),
        Key("batch_size", \.batchSize, "Messages per provider request.", .range(1...10_000)), Key("concurrency", \.concurrency, "Requests in flight at once on this channel in one process: one pool of senders shared by every page, trigger batch and retry.", .range(1...1024)),
        Key("rate_per_second", \.ratePerSecond, "Messages per second over all instances (unset: no limit).", .positive),
        Key("frequency_cap_per_day", \.frequencyCapPerDay, "At most this many messages per user per rolling day on this channel.", .orMore("none")),
        Key("timeout_ms", \.timeoutMs, "How long one request may stay on the wire.", .positive), Key("retry", \.retry, ""), Key("circuit_breaker", \.circuitBreaker, ""),
        Key("providers", \.providers, """
            http: several providers for this channel instead of url/auth_header/token_env, tried by priority (lowest first, then \
            list order), each with its own circuit breaker: while one's breaker is open its batches go to the next one with the \
            same message ids; when every breaker is open, sends are deferred. Batching, concurrency, rate, retries and the \
            breaker's settings stay the channel's.
            """),
    ]}

    func validate(_ path: [String], _ c: ConfigContext) {
        var envs = [("username_env", usernameEnv), ("password_env", passwordEnv)]
        if !providers.isEmpty {
            if provider != "http" { c.problem(path + ["providers"], "only an http channel takes a list of providers") }
            if url != nil { c.problem(path + ["url"], "set url on each of providers, not on the channel") }
            var names: Set<String> = []
            for (i, p) in providers.enumerated() where !names.insert(p.name).inserted {
                c.problem(path + ["providers[\(i)]", "name"], "'\(p.name)' is named twice")
            }
            return
        }
        switch provider {
        case "http":
            if !(url.map { $0.hasPrefix("http://") || $0.hasPrefix("https://") } ?? false) {
                c.problem(path + ["url"], "an http provider needs an http:// or https:// url")
            }
            envs = [("token_env", tokenEnv)]
        case "smtp":
            if (host ?? "").isEmpty { c.problem(path + ["host"], "an smtp provider needs a host") }
            if (from ?? "").isEmpty { c.problem(path + ["from"], "an smtp provider needs a from address") }
        default: envs = []
        }
        for case let (key, env?) in envs where c.environment[env] == nil { c.problem(path + [key], "environment variable \(env) is not set") }
    }
}

/// One provider of a channel that has several (`channels.<name>.providers`).
public struct ProviderSettings: ConfigSection, Sendable {
    public var name = "", url = "", authHeader = "Authorization", tokenEnv: String?, priority = 0
    public init() {}
    public init(name: String, url: String, priority: Int = 0, tokenEnv: String? = nil) {
        (self.name, self.url, self.priority, self.tokenEnv) = (name, url, priority, tokenEnv)
    }
    static var keys: [Key<Self>] {[
        Key("name", \.name, "What metrics (label provider) and delivery rows (column provider) call it.",
            .must("a name of letters, digits, '-', '_' or '.'", got: true) { !$0.isEmpty && $0.allSatisfy { $0.isLetter || $0.isNumber || "-_.".contains($0) } }),
        Key("url", \.url, "Where requests are sent (http:// or https://).",
            .must("an http:// or https:// url", got: true) { $0.hasPrefix("http://") || $0.hasPrefix("https://") }),
        Key("auth_header", \.authHeader, "The header that carries the token."),
        Key("token_env", \.tokenEnv, "The environment variable holding the token."),
        Key("priority", \.priority, "Lower goes first; equal priorities keep list order."),
    ]}

    func validate(_ path: [String], _ c: ConfigContext) {
        if let env = tokenEnv, c.environment[env] == nil { c.problem(path + ["token_env"], "environment variable \(env) is not set") }
    }
}

public struct RetrySettings: ConfigSection, Sendable {
    public var maxAttempts = 4, baseMs = 500, maxMs = 60_000
    public init() {}
    static var keys: [Key<Self>] {[
        Key("max_attempts", \.maxAttempts, "Every attempt counts, the first included.", .atLeast(1, " (it counts the first attempt)")),
        Key("base_ms", \.baseMs, "The first backoff; it doubles up to max_ms."), Key("max_ms", \.maxMs, ""),
    ]}

    func validate(_ path: [String], _ c: ConfigContext) {
        if !(baseMs > 0 && baseMs <= maxMs) { c.problem(path, "needs 0 < base_ms <= max_ms") }
    }
}

public struct CircuitBreakerSettings: ConfigSection, Sendable {
    public var failureRate = 0.5, windowSeconds = 30, minimumCalls = 20, coolDownMs = 10_000
    public init() {}
    static var keys: [Key<Self>] {[
        Key("failure_rate", \.failureRate, "Opens when this share of calls in the window failed.", .must("in (0, 1]") { $0 > 0 && $0 <= 1 }),
        Key("window_seconds", \.windowSeconds, "", .positive), Key("minimum_calls", \.minimumCalls, "Calls in the window before it may open.", .atLeast(1)),
        Key("cool_down_ms", \.coolDownMs, "How long it stays open before a trial call.", .positive),
    ]}
}
