import Foundation
import ReachCore
@testable import ReachService
import Testing
import TestSupport

func writeConfig(_ yaml: String) throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.unique("reach") + ".yaml").path
    try yaml.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

@Suite("configuration: YAML, REACH_* overrides, every problem reported")
struct ConfigurationTests {
    static let specExample = """
        kafka:
          brokers: "127.0.0.1:9092"
          group_id: reachd
          topics: {tasks: reach.tasks, events: reach.events, dlq: reach.dlq}
        postgres: {url: "postgresql://reach@127.0.0.1:5432/reach"}
        redis: {url: "redis://127.0.0.1:6379/0", prefix: "reach:"}
        http: {host: 0.0.0.0, port: 8080}
        auth:
          tokens: [{name: ops, scope: write, token_env: REACH_OPS_TOKEN}]
        quiet_hours: {start: "21:00", end: "08:00", default_timezone: "Asia/Shanghai"}
        channels:
          sms:   {provider: http, url: "https://sms.example/send", batch_size: 100, rate_per_second: 500,
                  timeout_ms: 3000, retry: {max_attempts: 4, base_ms: 500, max_ms: 60000}}
          push:  {provider: http, url: "https://push.example/v1/send", batch_size: 500}
          email: {provider: smtp, host: smtp.example, port: 587, from: "CRM <crm@example.com>",
                  username_env: SMTP_USER, password_env: SMTP_PASS}
          inapp: {provider: inbox}
          webhook: {provider: http, url: "https://hooks.example/reach"}
        """

    static let secrets = ["REACH_OPS_TOKEN": "t0ken", "SMTP_USER": "crm", "SMTP_PASS": "pw"]

    @Test("SPEC §9's example is valid and read as written")
    func specExampleLoads() throws {
        let (c, problems) = ConfigLoader.load(path: try writeConfig(Self.specExample), environment: Self.secrets)
        #expect(problems.isEmpty, "\(problems)")
        #expect(c.kafka.brokers == "127.0.0.1:9092" && !c.kafka.isEmbedded)
        #expect(c.kafka.topics.dlq == "reach.dlq")
        #expect(c.channels["sms"]?.ratePerSecond == 500)
        #expect(c.channels["sms"]?.retry.maxAttempts == 4)
        #expect(c.channels["push"]?.batchSize == 500)
        #expect(c.channels["email"]?.provider == "smtp" && c.channels["email"]?.port == 587)
        #expect(c.auth.tokens.first?.tokenEnv == "REACH_OPS_TOKEN")
        #expect(c.quietHours.defaultTimezone == "Asia/Shanghai")
    }

    @Test("no file at all: the defaults are valid")
    func defaultsAreValid() {
        let (c, problems) = ConfigLoader.load(path: nil, environment: [:])
        #expect(problems.isEmpty, "\(problems)")
        #expect(c.kafka.isEmbedded)
        #expect(c.http.port == 8080)
    }

    @Test("REACH_ + the key path overrides any key, nested and optional ones included")
    func environmentOverrides() throws {
        var env = Self.secrets
        env["REACH_POSTGRES_URL"] = "postgresql://other:pw@db:5433/x"
        env["REACH_KAFKA_GROUP_ID"] = "group-b"
        env["REACH_HTTP_PORT"] = "9090"
        env["REACH_CHANNELS_SMS_BATCH_SIZE"] = "250"
        env["REACH_CHANNELS_PUSH_RATE_PER_SECOND"] = "42"
        env["REACH_CHANNELS_PUSH_RETRY_MAX_ATTEMPTS"] = "7"
        env["REACH_KAFKA_TOPICS_TASKS"] = "t.tasks"
        let (c, problems) = ConfigLoader.load(path: try writeConfig(Self.specExample), environment: env)
        #expect(problems.isEmpty, "\(problems)")
        #expect(c.postgres.url == "postgresql://other:pw@db:5433/x")
        #expect(c.kafka.groupID == "group-b")
        #expect(c.http.port == 9090)
        #expect(c.channels["sms"]?.batchSize == 250)
        #expect(c.channels["push"]?.ratePerSecond == 42)
        #expect(c.channels["push"]?.retry.maxAttempts == 7)
        #expect(c.kafka.topics.tasks == "t.tasks")
    }

    @Test("every problem is reported at once, each with its key path")
    func everyProblem() throws {
        let yaml = """
            kafka: {brokers: "nohost", group_id: ""}
            postgres: {url: "mysql://x", pool_size: many}
            redis: {url: "redis://h:99999/0"}
            http: {port: 70000}
            auth: {tokens: [{name: ops, scope: admin, token_env: MISSING_TOKEN}, {name: ro, scope: read}]}
            quiet_hours: {start: "25:00", default_timezone: "Mars/Olympus"}
            kafak: {brokers: x}
            channels:
              sms: {provider: carrier-pigeon, batch_size: 0}
              push: {provider: http}
              email: {provider: smtp, username_env: NOT_SET}
              inapp: {provider: inbox, retry: {max_attempts: 0}}
            """
        let (_, problems) = ConfigLoader.load(path: try writeConfig(yaml), environment: ["REACH_HTTP_HOST": ""])
        let paths = Set(problems.map(\.path))
        for expected in ["kafka.brokers", "kafka.group_id", "postgres.url", "postgres.pool_size", "redis.url", "http.port",
                         "http.host", "auth.tokens[0].scope", "auth.tokens[0]", "auth.tokens[1]", "quiet_hours.start",
                         "quiet_hours.default_timezone", "kafak", "channels.sms.provider", "channels.sms.batch_size",
                         "channels.push.url", "channels.email.host", "channels.email.from", "channels.email.username_env",
                         "channels.inapp.retry.max_attempts"] {
            #expect(paths.contains(expected), "no problem reported for \(expected); got \(problems)")
        }
        #expect(problems.first { $0.path == "postgres.pool_size" }?.message.contains("'many'") == true)
        #expect(problems.first { $0.path == "kafak" }?.message == "unknown key")
    }

    @Test("a missing file is one clear problem")
    func missingFile() {
        let (_, problems) = ConfigLoader.load(path: "/nonexistent/reach.yaml", environment: [:])
        #expect(problems.count == 1)
        #expect(problems.first?.message.contains("/nonexistent/reach.yaml") == true)
    }

    @Test("secrets come from the environment or a file, never from YAML")
    func secrets() throws {
        let file = try writeConfig("file-secret\n")
        let secrets = Secrets(environment: ["TOKEN": "env-secret"])
        #expect(secrets.value(env: "TOKEN", file: nil) == "env-secret")
        #expect(secrets.value(env: "UNSET", file: file) == "file-secret")
        #expect(secrets.value(env: nil, file: "/nonexistent") == nil)
        let yaml = "kafka: {brokers: embedded, properties: {sasl.password: hunter2}, consumer_properties: {ssl.key.password: x}}"
        let (_, problems) = ConfigLoader.load(path: try writeConfig(yaml), environment: [:])
        #expect(problems.contains { $0.path == "kafka.properties.sasl.password" })
        #expect(problems.contains { $0.path == "kafka.consumer_properties.ssl.key.password" })

        let fine = "kafka: {brokers: embedded, consumer_properties: {fetch.wait.max.ms: '5'}}"
        let (configuration, none) = ConfigLoader.load(path: try writeConfig(fine), environment: [:])
        #expect(none.isEmpty && configuration.kafka.consumerProperties == ["fetch.wait.max.ms": "5"])
    }
}

@Suite struct LogRedactionTests {
    @Test("log lines mask phone numbers and e-mail addresses, in the message and in metadata")
    func masking() {
        let handler = ReachLogHandler(label: "t", level: .info, format: .json)
        let line = handler.render(level: .info, message: "sent to 13812341234",
                                  metadata: ["to": "alice@example.com", "user": "u-1"])
        #expect(line.contains("138****1234"))
        #expect(line.contains("a***@example.com"))
        #expect(!line.contains("13812341234") && !line.contains("alice@"))
        #expect(line.contains("\"user\":\"u-1\""))
        let data = Data(line.utf8)
        #expect((try? JSONSerialization.jsonObject(with: data)) != nil, "each line is valid JSON")
    }

    @Test("values under log.sensitive_keys never reach a line: JSON members, key=value text and metadata keys; ID and card numbers masked")
    func sensitiveKeys() throws {
        let handler = ReachLogHandler(label: "t", level: .info, format: .json, sensitiveKeys: SensitiveKeys(["salary", "id_number"]))
        let line = handler.render(level: .info, message: #"render failed for {"salary": 91234.5, "name": "Li", "ID_NUMBER":"A12"} salary=1000"#,
                                  metadata: ["salary": "88000", "payload": #"{"salary":"7","card":"4111 1111 1111 1111","id":"11010519491231002X"}"#,
                                             "phone": "+86 138 1234 5678"])
        for secret in ["91234.5", "A12", "1000", "88000", #"\"7\""#, "4111 1111", "19491231", "1234 5678"] {
            #expect(!line.contains(secret), "\(secret) in \(line)")
        }
        #expect(line.contains("Li") && line.contains("************1111") && line.contains("110105********002X") && line.contains("+86****5678"), "\(line)")
        #expect((try? JSONSerialization.jsonObject(with: Data(line.utf8))) != nil, "still valid JSON: \(line)")
        let (configuration, problems) = ConfigLoader.load(path: try writeConfig("log: {sensitive_keys: [salary, tax_id]}"), environment: [:])
        #expect(problems.isEmpty && configuration.log.sensitiveKeys == ["salary", "tax_id"], "\(problems)")
        #expect(ReachConfiguration().log.sensitiveKeys.contains("id_number"))
    }
}

@Suite("the configuration files shipped in deploy/")
struct ShippedConfigurationTests {
    @Test("deploy/local.yaml and deploy/reachd.example.yaml are valid")
    func shippedFilesAreValid() {
        let deploy = TestEnvironment.packageRoot.appendingPathComponent("deploy")
        // scripts/stack puts the two API tokens of local.yaml in .stack/env.
        let (_, local) = ConfigLoader.load(path: deploy.appendingPathComponent("local.yaml").path,
                                           environment: ["REACH_OPS_TOKEN": "o", "REACH_VIEWER_TOKEN": "v"])
        #expect(local.isEmpty, "\(local)")
        let secrets = ["REACH_OPS_TOKEN": "x", "SMS_TOKEN": "y", "SMTP_USER": "u", "SMTP_PASS": "p"]
        let (_, example) = ConfigLoader.load(path: deploy.appendingPathComponent("reachd.example.yaml").path, environment: secrets)
        // The dashboard token lives in a file that exists only on a real host.
        #expect(example.map(\.path) == ["auth.tokens[1]"], "\(example)")
    }

    @Test("deploy/reachd.example.yaml is what `reachd config example` prints from the key declarations")
    func exampleIsGenerated() throws {
        let path = TestEnvironment.packageRoot.appendingPathComponent("deploy/reachd.example.yaml").path
        #expect(try String(contentsOfFile: path, encoding: .utf8) == ConfigSchema.exampleYAML(),
                "regenerate it: reachd config example > deploy/reachd.example.yaml")
    }

    @Test("deploy/prometheus/alerts.yaml passes promtool check rules")
    func alertRules() throws {
        let rules = TestEnvironment.packageRoot.appendingPathComponent("deploy/prometheus/alerts.yaml").path
        let out = try run("promtool", ["check", "rules", rules])
        #expect(out.contains("SUCCESS"))
    }
}
