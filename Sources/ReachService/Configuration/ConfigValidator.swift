import Foundation
import ReachCore
import ReachRedis

/// Checks a decoded configuration as a whole; every problem names its key path.
struct ConfigValidator {
    let environment: [String: String]
    static let providers: Set<String> = ["http", "smtp", "inbox", "log"]

    func problems(in c: ReachConfiguration) -> [ConfigProblem] {
        var p: [ConfigProblem] = []
        func check(_ ok: Bool, _ path: String, _ message: @autoclosure () -> String) {
            if !ok { p.append(ConfigProblem(path, message())) }
        }

        // Kafka
        check(!c.kafka.brokers.isEmpty, "kafka.brokers", "must be host:port[,host:port…] or 'embedded'")
        if !c.kafka.isEmbedded {
            for broker in c.kafka.brokers.split(separator: ",") {
                let parts = broker.trimmingCharacters(in: .whitespaces).split(separator: ":")
                let hostPort = parts.count >= 2 && Int(parts.last!).map { (1...65535).contains($0) } == true
                check(hostPort, "kafka.brokers", "'\(broker)' is not host:port")
            }
        }
        check(!c.kafka.groupID.isEmpty, "kafka.group_id", "must not be empty")
        for (name, topic) in [("tasks", c.kafka.topics.tasks), ("events", c.kafka.topics.events), ("dlq", c.kafka.topics.dlq)] {
            check(Self.isTopicName(topic), "kafka.topics.\(name)", "'\(topic)' is not a valid topic name")
        }
        check(Set(c.kafka.topics.all).count == 3, "kafka.topics", "tasks, events and dlq must be three different topics")
        check((1...1000).contains(c.kafka.partitions), "kafka.partitions", "must be 1-1000")
        check((16_384...1_000_000_000).contains(c.kafka.dlqMaxBytes), "kafka.dlq_max_bytes",
              "must be 16384-1000000000 (bytes; keep it under the broker's message.max.bytes)")
        for (section, map) in [("properties", c.kafka.properties), ("consumer_properties", c.kafka.consumerProperties)] {
            for name in map.keys where name.contains("password") || name.contains("secret") {
                check(false, "kafka.\(section).\(name)", "secrets may not be set in configuration; use the environment")
            }
        }

        // PostgreSQL
        let pg = c.postgres.url
        check(pg.hasPrefix("postgresql://") || pg.hasPrefix("postgres://") || pg.contains("="),
              "postgres.url", "must be a postgresql:// URL or a libpq connection string")
        check((1...256).contains(c.postgres.poolSize), "postgres.pool_size", "must be 1-256")
        check(c.postgres.connectTimeoutMs >= 1000, "postgres.connect_timeout_ms", "must be at least 1000")
        check(c.postgres.queryTimeoutMs > 0, "postgres.query_timeout_ms", "must be positive")

        // Redis
        do { _ = try RedisConfiguration(url: c.redis.url) } catch { check(false, "redis.url", "\(error)") }
        check(!c.redis.prefix.contains("{") && !c.redis.prefix.contains("}"), "redis.prefix", "may not contain '{' or '}' (reserved for hash tags)")
        check((1...256).contains(c.redis.poolSize), "redis.pool_size", "must be 1-256")
        check(c.redis.timeoutMs > 0, "redis.timeout_ms", "must be positive")

        // HTTP
        check((0...65535).contains(c.http.port), "http.port", "must be 0-65535")
        check(!c.http.host.isEmpty, "http.host", "must not be empty")
        check(c.http.maxBodyBytes >= 1024, "http.max_body_bytes", "must be at least 1024")
        check(c.http.tokenRatePerSecond >= 0, "http.token_rate_per_second", "must be 0 (no limit) or more")
        check(c.http.tokenBurst >= 1, "http.token_burst", "must be at least 1")
        check(c.http.previewTimeoutMs >= 100, "http.preview_timeout_ms", "must be at least 100")
        check(c.http.postgresPoolSize >= 1, "http.postgres_pool_size", "must be at least 1")

        // Auth
        var names: Set<String> = []
        for (i, token) in c.auth.tokens.enumerated() {
            let path = "auth.tokens[\(i)]"
            check(!token.name.isEmpty, "\(path).name", "must not be empty")
            check(names.insert(token.name).inserted || token.name.isEmpty, "\(path).name", "'\(token.name)' is used twice")
            check(["read", "write"].contains(token.scope), "\(path).scope", "must be read or write, got '\(token.scope)'")
            if token.tokenEnv == nil && token.tokenFile == nil {
                check(false, path, "needs token_env or token_file (tokens are never written in the file)")
            } else if Secrets(environment: environment).value(env: token.tokenEnv, file: token.tokenFile) == nil {
                let source = token.tokenEnv.map { "environment variable \($0)" } ?? "file \(token.tokenFile!)"
                check(false, path, "\(source) is not set or empty")
            }
        }

        // Quiet hours
        check(Self.isClock(c.quietHours.start), "quiet_hours.start", "must be HH:MM, got '\(c.quietHours.start)'")
        check(Self.isClock(c.quietHours.end), "quiet_hours.end", "must be HH:MM, got '\(c.quietHours.end)'")
        check(TimeZone(identifier: c.quietHours.defaultTimezone) != nil, "quiet_hours.default_timezone",
              "unknown time zone '\(c.quietHours.defaultTimezone)'")

        // Channels
        for (name, ch) in c.channels.sorted(by: { $0.key < $1.key }) {
            let path = "channels.\(name)"
            check(name.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" } && !name.isEmpty,
                  path, "channel names use letters, digits, '_' and '-'")
            check(Self.providers.contains(ch.provider), "\(path).provider",
                  "must be one of \(Self.providers.sorted().joined(separator: ", ")), got '\(ch.provider)'")
            switch ch.provider {
            case "http":
                let ok = ch.url.map { $0.hasPrefix("http://") || $0.hasPrefix("https://") } ?? false
                check(ok, "\(path).url", "an http provider needs an http:// or https:// url")
                if let env = ch.tokenEnv { check(environment[env] != nil, "\(path).token_env", "environment variable \(env) is not set") }
            case "smtp":
                check(!(ch.host ?? "").isEmpty, "\(path).host", "an smtp provider needs a host")
                check(!(ch.from ?? "").isEmpty, "\(path).from", "an smtp provider needs a from address")
                check((1...65535).contains(ch.port), "\(path).port", "must be 1-65535")
                check(["auto", "require", "off"].contains(ch.starttls), "\(path).starttls", "must be auto, require or off")
                for (key, env) in [("username_env", ch.usernameEnv), ("password_env", ch.passwordEnv)] {
                    if let env { check(environment[env] != nil, "\(path).\(key)", "environment variable \(env) is not set") }
                }
            default:
                break
            }
            if let address = ch.address {
                check(AddressField(rawValue: address) != nil, "\(path).address", "must be phone, email, push_token or user_id")
            }
            check((1...10_000).contains(ch.batchSize), "\(path).batch_size", "must be 1-10000")
            check((1...1024).contains(ch.concurrency), "\(path).concurrency", "must be 1-1024")
            if let rate = ch.ratePerSecond { check(rate > 0, "\(path).rate_per_second", "must be positive") }
            check(ch.timeoutMs > 0, "\(path).timeout_ms", "must be positive")
            check(ch.frequencyCapPerDay >= 0, "\(path).frequency_cap_per_day", "must be 0 (none) or more")
            check(ch.retry.maxAttempts >= 1, "\(path).retry.max_attempts", "must be at least 1 (it counts the first attempt)")
            check(ch.retry.baseMs > 0 && ch.retry.baseMs <= ch.retry.maxMs, "\(path).retry", "needs 0 < base_ms <= max_ms")
            check(ch.circuitBreaker.failureRate > 0 && ch.circuitBreaker.failureRate <= 1,
                  "\(path).circuit_breaker.failure_rate", "must be in (0, 1]")
            check(ch.circuitBreaker.windowSeconds > 0, "\(path).circuit_breaker.window_seconds", "must be positive")
            check(ch.circuitBreaker.minimumCalls >= 1, "\(path).circuit_breaker.minimum_calls", "must be at least 1")
            check(ch.circuitBreaker.coolDownMs > 0, "\(path).circuit_breaker.cool_down_ms", "must be positive")
        }

        check((1...50_000).contains(c.pipeline.pageSize), "pipeline.page_size", "must be 1-50000")
        check((1...16).contains(c.pipeline.pagesInFlight), "pipeline.pages_in_flight", "must be 1-16")
        check(c.pipeline.leaseMs >= 1_000, "pipeline.lease_ms", "must be at least 1000")
        check(c.pipeline.pollIntervalMs > 0, "pipeline.poll_interval_ms", "must be positive")
        check((1...64).contains(c.pipeline.maxCampaigns), "pipeline.max_campaigns", "must be 1-64")
        check(c.pipeline.inFlightTTLMs >= 1_000, "pipeline.in_flight_ttl_ms", "must be at least 1000")
        check(c.frequencyCap.perDay >= 0, "frequency_cap.per_day", "must be 0 (none) or more")
        check((1...256).contains(c.pipeline.delayQueueShards), "pipeline.delay_queue_shards", "must be 1-256")
        check(c.pipeline.sentTTLHours >= 1, "pipeline.sent_ttl_hours", "must be at least 1")
        check(c.shutdown.gracePeriodMs > 0, "shutdown.grace_period_ms", "must be positive")
        check(["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(c.log.level), "log.level",
              "must be trace, debug, info, notice, warning, error or critical")
        check(["json", "text"].contains(c.log.format), "log.format", "must be json or text")
        return p
    }

    static func isTopicName(_ s: String) -> Bool {
        !s.isEmpty && s.count <= 249 && s != "." && s != ".."
            && s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "_" || $0 == "-") }
    }

    static func isClock(_ s: String) -> Bool {
        let parts = s.split(separator: ":")
        guard parts.count == 2, parts[0].count == 2, parts[1].count == 2,
              let h = Int(parts[0]), let m = Int(parts[1]) else { return false }
        return (0...23).contains(h) && (0...59).contains(m)
    }
}
