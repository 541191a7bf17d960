/// Everything `reachd` reads from `--config` and `REACH_*` variables (SPEC §9).
/// Every key has a default that works for the local stack.
public struct ReachConfiguration: Decodable, Sendable {
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

    enum CodingKeys: String, CodingKey {
        case kafka, postgres, redis, http, auth, channels, shutdown, log, pipeline
        case frequencyCap = "frequency_cap"
        case quietHours = "quiet_hours"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = ReachConfiguration()
        kafka = try c.value(.kafka, d.kafka)
        postgres = try c.value(.postgres, d.postgres)
        redis = try c.value(.redis, d.redis)
        http = try c.value(.http, d.http)
        auth = try c.value(.auth, d.auth)
        quietHours = try c.value(.quietHours, d.quietHours)
        channels = try c.value(.channels, d.channels)
        shutdown = try c.value(.shutdown, d.shutdown)
        log = try c.value(.log, d.log)
        pipeline = try c.value(.pipeline, d.pipeline)
        frequencyCap = try c.value(.frequencyCap, d.frequencyCap)
    }
}

/// At most `per_day` messages per user over any rolling 24 hours, all channels
/// together (0: no cap). Channels may add their own `frequency_cap_per_day`.
public struct FrequencyCapSettings: Decodable, Sendable {
    public var perDay = 0

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        perDay = try c.value(AnyKey("per_day"), 0)
    }
}

/// How campaigns are run.
public struct PipelineSettings: Decodable, Sendable {
    /// Recipients read from PostgreSQL per keyset page (and per checkpoint).
    public var pageSize = 5_000
    /// Pages of one campaign being decided and sent at once; their rows and
    /// checkpoints are still written strictly in page order.
    public var pagesInFlight = 3
    /// A runner's hold on a campaign; another instance takes over a campaign
    /// whose lease ran out (its runner died).
    public var leaseMs = 15_000
    /// How often an idle instance looks for due or orphaned campaigns.
    public var pollIntervalMs = 500
    /// Campaigns one instance runs at once.
    public var maxCampaigns = 2
    /// Idempotency keys: in-flight claim and after-send lifetimes.
    public var inFlightTTLMs = 60_000
    public var sentTTLHours = 168
    /// Shards of the Redis delay queue (each its own hash tag / cluster slot).
    public var delayQueueShards = 4

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        let d = PipelineSettings()
        pageSize = try c.value(AnyKey("page_size"), d.pageSize)
        pagesInFlight = try c.value(AnyKey("pages_in_flight"), d.pagesInFlight)
        leaseMs = try c.value(AnyKey("lease_ms"), d.leaseMs)
        pollIntervalMs = try c.value(AnyKey("poll_interval_ms"), d.pollIntervalMs)
        maxCampaigns = try c.value(AnyKey("max_campaigns"), d.maxCampaigns)
        inFlightTTLMs = try c.value(AnyKey("in_flight_ttl_ms"), d.inFlightTTLMs)
        sentTTLHours = try c.value(AnyKey("sent_ttl_hours"), d.sentTTLHours)
        delayQueueShards = try c.value(AnyKey("delay_queue_shards"), d.delayQueueShards)
    }
}

public struct KafkaSettings: Decodable, Sendable {
    /// `host:port[,host:port…]`, or `embedded` for the in-process broker.
    public var brokers = "embedded"
    public var groupID = "reachd"
    public var topics = TopicNames()
    /// Partitions of each topic the embedded broker creates.
    public var partitions = 4
    /// Extra librdkafka properties for every client (e.g. `security.protocol`); values may not hold secrets.
    public var properties: [String: String] = [:]
    /// Extra librdkafka properties for the consumers only (e.g. `fetch.wait.max.ms`), over `properties`.
    public var consumerProperties: [String: String] = [:]
    /// The largest message reachd publishes on the dead-letter topic, in bytes.
    /// A dead letter over it is cut to fit (payload copy and quoted values
    /// truncated and marked; the table keeps the whole message). The default
    /// stays under Kafka's default 1 MB `message.max.bytes` with room for
    /// the record overhead; raise it only with the broker's and topic's limit.
    public var dlqMaxBytes = 900_000

    public init() {}
    public var isEmbedded: Bool { brokers == "embedded" }

    enum CodingKeys: String, CodingKey {
        case brokers, topics, partitions, properties
        case groupID = "group_id"
        case consumerProperties = "consumer_properties"
        case dlqMaxBytes = "dlq_max_bytes"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = KafkaSettings()
        brokers = try c.value(.brokers, d.brokers)
        groupID = try c.value(.groupID, d.groupID)
        topics = try c.value(.topics, d.topics)
        partitions = try c.value(.partitions, d.partitions)
        properties = try c.value(.properties, d.properties)
        consumerProperties = try c.value(.consumerProperties, d.consumerProperties)
        dlqMaxBytes = try c.value(.dlqMaxBytes, d.dlqMaxBytes)
    }
}

public struct TopicNames: Decodable, Sendable {
    public var tasks = "reach.tasks"
    public var events = "reach.events"
    public var dlq = "reach.dlq"

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        let d = TopicNames()
        tasks = try c.value(AnyKey("tasks"), d.tasks)
        events = try c.value(AnyKey("events"), d.events)
        dlq = try c.value(AnyKey("dlq"), d.dlq)
    }

    public var all: [String] { [tasks, events, dlq] }
}

public struct PostgresSettings: Decodable, Sendable {
    /// A libpq URL; put a password here only through `REACH_POSTGRES_URL`.
    public var url = "postgresql://reach@127.0.0.1:5432/reach"
    public var poolSize = 4
    public var connectTimeoutMs = 5_000
    public var queryTimeoutMs = 30_000

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        let d = PostgresSettings()
        url = try c.value(AnyKey("url"), d.url)
        poolSize = try c.value(AnyKey("pool_size"), d.poolSize)
        connectTimeoutMs = try c.value(AnyKey("connect_timeout_ms"), d.connectTimeoutMs)
        queryTimeoutMs = try c.value(AnyKey("query_timeout_ms"), d.queryTimeoutMs)
    }
}

public struct RedisSettings: Decodable, Sendable {
    public var url = "redis://127.0.0.1:6379/0"
    public var prefix = "reach:"
    public var poolSize = 4
    public var timeoutMs = 5_000

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        let d = RedisSettings()
        url = try c.value(AnyKey("url"), d.url)
        prefix = try c.value(AnyKey("prefix"), d.prefix)
        poolSize = try c.value(AnyKey("pool_size"), d.poolSize)
        timeoutMs = try c.value(AnyKey("timeout_ms"), d.timeoutMs)
    }
}

public struct HTTPSettings: Decodable, Sendable {
    public var host = "0.0.0.0"
    public var port = 8080
    /// The largest `/v1` request body, in bytes (413 above it).
    public var maxBodyBytes = 1_048_576
    /// Requests per second each API token may make on one instance (0: no limit), and the burst above it (429 past it).
    public var tokenRatePerSecond = 50
    public var tokenBurst = 100
    /// How long `POST /v1/segments/preview` may count before PostgreSQL stops it.
    public var previewTimeoutMs = 5_000
    /// PostgreSQL connections of the API's own pool: its reads never queue
    /// behind the pipeline's page writes, and a burst of API calls never takes
    /// the pipeline's connections.
    public var postgresPoolSize = 2

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        let d = HTTPSettings()
        host = try c.value(AnyKey("host"), d.host)
        port = try c.value(AnyKey("port"), d.port)
        maxBodyBytes = try c.value(AnyKey("max_body_bytes"), d.maxBodyBytes)
        tokenRatePerSecond = try c.value(AnyKey("token_rate_per_second"), d.tokenRatePerSecond)
        tokenBurst = try c.value(AnyKey("token_burst"), d.tokenBurst)
        previewTimeoutMs = try c.value(AnyKey("preview_timeout_ms"), d.previewTimeoutMs)
        postgresPoolSize = try c.value(AnyKey("postgres_pool_size"), d.postgresPoolSize)
    }
}

public struct AuthSettings: Decodable, Sendable {
    public var tokens: [TokenSettings] = []

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        tokens = try c.value(AnyKey("tokens"), [])
    }
}

/// An API token: its secret comes only from `token_env` or `token_file`.
public struct TokenSettings: Decodable, Sendable {
    public var name = ""
    public var scope = "read"
    public var tokenEnv: String?
    public var tokenFile: String?

    public init(name: String, scope: String, tokenEnv: String? = nil, tokenFile: String? = nil) {
        self.name = name
        self.scope = scope
        self.tokenEnv = tokenEnv
        self.tokenFile = tokenFile
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        name = try c.value(AnyKey("name"), "")
        scope = try c.value(AnyKey("scope"), "read")
        tokenEnv = try c.decodeIfPresent(String.self, forKey: AnyKey("token_env"))
        tokenFile = try c.decodeIfPresent(String.self, forKey: AnyKey("token_file"))
    }
}

/// The daily window in which sends are deferred, in each user's time zone;
/// `start` equal to `end` turns quiet hours off.
public struct QuietHoursSettings: Decodable, Sendable {
    public var start = "21:00"
    public var end = "08:00"
    public var defaultTimezone = "Asia/Shanghai"

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        let d = QuietHoursSettings()
        start = try c.value(AnyKey("start"), d.start)
        end = try c.value(AnyKey("end"), d.end)
        defaultTimezone = try c.value(AnyKey("default_timezone"), d.defaultTimezone)
    }
}

public struct ShutdownSettings: Decodable, Sendable {
    /// How long SIGTERM/SIGINT may take before remaining work is cancelled.
    public var gracePeriodMs = 15_000

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        gracePeriodMs = try c.value(AnyKey("grace_period_ms"), 15_000)
    }
}

public struct LogSettings: Decodable, Sendable {
    /// trace, debug, info, notice, warning, error, critical
    public var level = "info"
    /// `json` (one object a line) or `text`
    public var format = "json"

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        level = try c.value(AnyKey("level"), "info")
        format = try c.value(AnyKey("format"), "json")
    }
}

/// One channel's provider and limits. Which keys matter depends on `provider`:
/// `http` (url, auth), `smtp` (host, port, from, credentials), `inbox`, `log` (path).
public struct ChannelSettings: Decodable, Sendable {
    public var provider = "log"
    public var url: String?
    public var authHeader = "Authorization"
    public var tokenEnv: String?
    public var host: String?
    public var port = 587
    public var from: String?
    public var usernameEnv: String?
    public var passwordEnv: String?
    public var passwordFile: String?
    public var starttls = "auto"
    /// Verify the SMTP server's TLS certificate (turn off only for test servers).
    public var tlsVerify = true
    public var path: String?
    /// The recipient field sent to: phone, email, push_token or user_id
    /// (default: SPEC §6's field for sms/email/push, else user_id).
    public var address: String?
    public var batchSize = 100
    public var concurrency = 4
    public var ratePerSecond: Int?
    /// At most this many messages per user per rolling day on this channel (0: none).
    public var frequencyCapPerDay = 0
    public var timeoutMs = 3_000
    public var retry = RetrySettings()
    public var circuitBreaker = CircuitBreakerSettings()

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        let d = ChannelSettings()
        provider = try c.value(AnyKey("provider"), d.provider)
        url = try c.decodeIfPresent(String.self, forKey: AnyKey("url"))
        authHeader = try c.value(AnyKey("auth_header"), d.authHeader)
        tokenEnv = try c.decodeIfPresent(String.self, forKey: AnyKey("token_env"))
        host = try c.decodeIfPresent(String.self, forKey: AnyKey("host"))
        port = try c.value(AnyKey("port"), d.port)
        from = try c.decodeIfPresent(String.self, forKey: AnyKey("from"))
        usernameEnv = try c.decodeIfPresent(String.self, forKey: AnyKey("username_env"))
        passwordEnv = try c.decodeIfPresent(String.self, forKey: AnyKey("password_env"))
        passwordFile = try c.decodeIfPresent(String.self, forKey: AnyKey("password_file"))
        starttls = try c.value(AnyKey("starttls"), d.starttls)
        tlsVerify = try c.value(AnyKey("tls_verify"), d.tlsVerify)
        path = try c.decodeIfPresent(String.self, forKey: AnyKey("path"))
        address = try c.decodeIfPresent(String.self, forKey: AnyKey("address"))
        batchSize = try c.value(AnyKey("batch_size"), d.batchSize)
        concurrency = try c.value(AnyKey("concurrency"), d.concurrency)
        ratePerSecond = try c.decodeIfPresent(Int.self, forKey: AnyKey("rate_per_second"))
        frequencyCapPerDay = try c.value(AnyKey("frequency_cap_per_day"), d.frequencyCapPerDay)
        timeoutMs = try c.value(AnyKey("timeout_ms"), d.timeoutMs)
        retry = try c.value(AnyKey("retry"), d.retry)
        circuitBreaker = try c.value(AnyKey("circuit_breaker"), d.circuitBreaker)
    }
}

public struct RetrySettings: Decodable, Sendable {
    /// Every attempt counts, the first included.
    public var maxAttempts = 4
    public var baseMs = 500
    public var maxMs = 60_000

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        let d = RetrySettings()
        maxAttempts = try c.value(AnyKey("max_attempts"), d.maxAttempts)
        baseMs = try c.value(AnyKey("base_ms"), d.baseMs)
        maxMs = try c.value(AnyKey("max_ms"), d.maxMs)
    }
}

public struct CircuitBreakerSettings: Decodable, Sendable {
    /// Opens when this share of calls in the window failed (0…1).
    public var failureRate = 0.5
    public var windowSeconds = 30
    public var minimumCalls = 20
    public var coolDownMs = 10_000

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        let d = CircuitBreakerSettings()
        failureRate = try c.value(AnyKey("failure_rate"), d.failureRate)
        windowSeconds = try c.value(AnyKey("window_seconds"), d.windowSeconds)
        minimumCalls = try c.value(AnyKey("minimum_calls"), d.minimumCalls)
        coolDownMs = try c.value(AnyKey("cool_down_ms"), d.coolDownMs)
    }
}
