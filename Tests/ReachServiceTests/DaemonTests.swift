import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import ReachKafka
import ReachService
import Synchronization
import Testing
import TestSupport

struct HTTPReply {
    let status: Int
    let body: String
}

func get(_ url: String) async throws -> HTTPReply {
    let (data, response) = try await URLSession.shared.data(from: URL(string: url)!)
    return HTTPReply(status: (response as! HTTPURLResponse).statusCode, body: String(decoding: data, as: UTF8.self))
}

/// Starts `Daemon` in-process on a free port and returns the port and the task.
func startDaemon(_ configuration: ReachConfiguration) async throws -> (Int, Task<Void, any Error>) {
    let port = Mutex<Int?>(nil)
    let task = Task {
        try await Daemon(configuration: configuration, logger: .init(label: "test")).run { p in port.withLock { $0 = p } }
    }
    guard try await eventually(timeout: .seconds(20), { port.withLock { $0 } != nil }) else {
        task.cancel()
        throw TestEnvironment.Missing(name: "daemon did not start listening")
    }
    return (port.withLock { $0 }!, task)
}

func testConfiguration() async throws -> ReachConfiguration {
    var c = ReachConfiguration()
    c.kafka.brokers = "embedded"
    c.kafka.partitions = 2
    c.postgres.url = try await TestDatabase.migrated()
    c.redis.url = try TestEnvironment.redisURL()
    c.http.host = "127.0.0.1"
    c.http.port = 0
    return c
}

@Suite("reachd serve: health, readiness and metrics over HTTP")
struct DaemonTests {
    @Test("/healthz and /readyz answer 200 with Kafka, PostgreSQL and Redis up; /metrics passes promtool")
    func healthyDaemon() async throws {
        let (port, task) = try await startDaemon(try await testConfiguration())
        defer { task.cancel() }
        let health = try await get("http://127.0.0.1:\(port)/healthz")
        #expect(health.status == 200)
        // Readiness is probed in the background: the first probes land within moments of the start.
        var ready = HTTPReply(status: 0, body: "")
        _ = try await eventually(timeout: .seconds(20)) {
            ready = try await get("http://127.0.0.1:\(port)/readyz")
            return ready.status == 200
        }
        #expect(ready.status == 200, "\(ready.body)")
        let json = try JSONSerialization.jsonObject(with: Data(ready.body.utf8)) as? [String: Any]
        let checks = json?["checks"] as? [String: [String: Any]]
        #expect(Set(checks?.keys.map { $0 } ?? []) == ["kafka", "postgres", "redis"])
        #expect(checks?.values.allSatisfy { $0["ok"] as? Bool == true } == true)

        let metrics = try await get("http://127.0.0.1:\(port)/metrics")
        #expect(metrics.status == 200)
        #expect(metrics.body.contains("reach_dependency_up{dependency=\"redis\"} 1"))
        #expect(metrics.body.contains("reach_build_info"))
        let file = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.unique("metrics")).path
        try metrics.body.write(toFile: file, atomically: true, encoding: .utf8)
        let lint = try await blocking { try run("sh", ["-c", "promtool check metrics < \(file)"]) }
        #expect(!lint.contains("problem") && !lint.contains("error"), "promtool: \(lint)")
    }

    @Test("/readyz answers 503 and names the dependency that is down")
    func notReadyWhenRedisIsDown() async throws {
        var c = try await testConfiguration()
        c.redis.url = "redis://127.0.0.1:\(try TestEnvironment.freePort())/0"
        let (port, task) = try await startDaemon(c)
        defer { task.cancel() }
        var checks: [String: [String: Any]]?
        var ready = HTTPReply(status: 0, body: "")
        let settled = try await eventually(timeout: .seconds(20)) {
            ready = try await get("http://127.0.0.1:\(port)/readyz")
            checks = (try JSONSerialization.jsonObject(with: Data(ready.body.utf8)) as? [String: Any])?["checks"] as? [String: [String: Any]]
            return checks?["postgres"]?["ok"] as? Bool == true && checks?["kafka"]?["ok"] as? Bool == true
        }
        #expect(settled, "\(ready.body)")
        #expect(ready.status == 503)
        #expect(checks?["redis"]?["ok"] as? Bool == false)
        // The world learns which dependency is down, not the error (host, port, users): that is in the log.
        #expect(!ready.body.contains("127.0.0.1") && !ready.body.contains("error") && !ready.body.contains("refused"), "\(ready.body)")
        let metrics = try await get("http://127.0.0.1:\(port)/metrics")
        #expect(metrics.body.contains("reach_dependency_up{dependency=\"redis\"} 0"))
    }

    @Test("/readyz answers within a second from kept state while Redis hangs (SIGSTOP), says redis is down, and is ready again after SIGCONT")
    func readyWhileRedisHangs() async throws {
        let redis = try await RedisServerProcess.start()
        var c = try await testConfiguration()
        c.redis.url = redis.url
        let (port, task) = try await startDaemon(c)
        defer { task.cancel() }
        let up = try await eventually(timeout: .seconds(20)) { (try? await get("http://127.0.0.1:\(port)/readyz"))?.status == 200 }
        #expect(up, "not ready before the freeze")
        redis.freeze()
        defer { redis.thaw() }
        var slowest = Duration.zero
        var sawDown = false
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(6)
        while clock.now < deadline {
            let started = clock.now
            let reply = try await get("http://127.0.0.1:\(port)/readyz")
            slowest = max(slowest, clock.now - started)
            if reply.status == 503 {
                let checks = (try JSONSerialization.jsonObject(with: Data(reply.body.utf8)) as? [String: Any])?["checks"] as? [String: [String: Any]]
                #expect(checks?["redis"]?["ok"] as? Bool == false && checks?["postgres"]?["ok"] as? Bool == true, "\(reply.body)")
                sawDown = true
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(sawDown, "/readyz never said redis was down while it hung")
        #expect(slowest < .seconds(1), "the slowest /readyz answer took \(slowest)")
        redis.thaw()
        let back = try await eventually(timeout: .seconds(20)) { (try? await get("http://127.0.0.1:\(port)/readyz"))?.status == 200 }
        #expect(back, "not ready again after SIGCONT")
    }

    @Test("reach_kafka_consumer_lag covers reach.events too, read from the events consumer's own group")
    func eventsConsumerLag() async throws {
        let kafka = try embeddedKafka()
        let log = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.unique("e")).path
        let configuration = try pipelineConfiguration(kafka: kafka, postgresURL: try await TestDatabase.migrated(), providerPort: 1, logPath: log)
        let (port, daemon) = try await startDaemon(configuration)
        defer { daemon.cancel() }
        // Events no rule listens to: consumed and committed at once by the `.events` group. Read
        // under the tasks group instead, these three records would stay lag for ever.
        for i in 0..<3 {
            try await publish(kafka, #"{"event_id":"e-\#(i)","event":"nobody.listens","user_id":"u1"}"#, key: "u1", topic: "reach.events")
        }
        var lines: [String] = []
        let sampled = try await eventually(timeout: .seconds(30), every: .milliseconds(500)) {
            lines = try await get("http://127.0.0.1:\(port)/metrics").body.split(separator: "\n").map(String.init)
                .filter { $0.hasPrefix("reach_kafka_consumer_lag{") }
            let events = lines.filter { $0.contains("topic=\"reach.events\"") }
            return events.count == 2 && events.allSatisfy { $0.split(separator: " ").last.flatMap { Double($0) } == 0 }
        }
        #expect(sampled, "\(lines)")
        #expect(lines.filter { $0.contains("topic=\"reach.tasks\"") }.count == 2, "\(lines)")
    }
}

@Suite("the reachd binary")
struct BinaryTests {
    func spawnReachd(_ arguments: [String], environment: [String: String] = [:]) throws -> SpawnedProcess {
        try spawn(TestEnvironment.reachdBinary.path, arguments, environment: environment)
    }

    @Test("SIGTERM stops reachd serve gracefully: exit 0 within the grace period")
    func gracefulShutdown() async throws {
        let port = try TestEnvironment.freePort()
        let reachd = try spawnReachd(["serve"], environment: [
            "REACH_POSTGRES_URL": try await TestDatabase.migrated(), "REACH_REDIS_URL": try TestEnvironment.redisURL(),
            "REACH_HTTP_HOST": "127.0.0.1", "REACH_HTTP_PORT": "\(port)", "REACH_SHUTDOWN_GRACE_PERIOD_MS": "5000",
        ])
        let up = try await eventually(timeout: .seconds(30)) { (try? await get("http://127.0.0.1:\(port)/readyz"))?.status == 200 }
        #expect(up, "reachd did not become ready: \(reachd.output)")
        reachd.signal(SIGTERM)
        let code = try await reachd.wait(within: .seconds(8))
        let log = reachd.output
        #expect(code == 0, "exit status \(String(describing: code)); log: \(log)")
        #expect(log.contains("reachd stopped"))
        #expect(log.split(separator: "\n").filter { $0.hasPrefix("{") }.allSatisfy {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8))) != nil
        }, "every log line is JSON")
    }

    @Test("reachd serve whose HTTP port is taken exits 1 with the error, not a crash (its HTTP provider clients are shut down first)")
    func portTaken() async throws {
        // A listening socket holds the port for the whole test.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && listen(fd, 1) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        #expect(bound)
        let port = Int(UInt16(bigEndian: address.sin_port))
        let config = try writeConfig("""
            http: {host: 127.0.0.1, port: \(port)}
            channels:
              sms: {provider: http, url: "http://127.0.0.1:9/sms"}
            """)
        let reachd = try spawnReachd(["serve", "--config", config], environment: [
            "REACH_POSTGRES_URL": try await TestDatabase.migrated(), "REACH_REDIS_URL": try TestEnvironment.redisURL(),
        ])
        let code = try await reachd.wait(within: .seconds(30))
        let log = reachd.output
        #expect(code == 1, "exit status \(String(describing: code)); log: \(log.suffix(2_000))")
        #expect(!log.contains("Fatal error") && !log.contains("💣"), "no crash: \(log.suffix(2_000))")
        #expect(log.lowercased().contains("address already in use"), "the error says why: \(log.suffix(2_000))")
    }

    @Test("reachd config check prints every problem with its key path and exits 1")
    func configCheck() async throws {
        let path = try writeConfig("http: {port: lots}\nchannels: {sms: {provider: fax}}\n")
        let bad = try spawnReachd(["config", "check", "--config", path], environment: ["REACH_REDIS_URL": "tcp://x"])
        // 30 s, not 10: a debug binary starting under the parallel suite's load took longer than 10 s once.
        let code = try await bad.wait(within: .seconds(30))
        let text = bad.output
        #expect(code == 1)
        #expect(text.contains("http.port: expected an integer, got 'lots'"))
        #expect(text.contains("channels.sms.provider: must be one of"))
        #expect(text.contains("redis.url:"))

        let good = try writeConfig(ConfigurationTests.specExample)
        let ok = try spawnReachd(["config", "check", "--config", good], environment: ConfigurationTests.secrets.merging(
            ["REACH_POSTGRES_URL": "postgresql://reach:hunter2@127.0.0.1/reach"]) { _, n in n })
        #expect(try await ok.wait(within: .seconds(30)) == 0)
        let okText = ok.output
        #expect(okText.contains("configuration OK"))
        #expect(!okText.contains("hunter2"), "passwords are masked")
    }

    /// Database and Redis addresses with a secret in every form reachd accepts, for one server each.
    static func secretForms(postgres: String, redis: String) throws -> [(postgres: String, redis: String, secrets: [String])] {
        let pg = try #require(URLComponents(string: postgres))
        let rd = try #require(URLComponents(string: redis))
        let pgHost = pg.host ?? "127.0.0.1", pgPort = pg.port ?? 5432, db = String(pg.path.dropFirst()), user = pg.user ?? "reach"
        let rdHost = rd.host ?? "127.0.0.1", rdPort = rd.port ?? 6379
        return [
            ("postgresql://\(user):pg-userinfo-s3cret@\(pgHost):\(pgPort)/\(db)",
             "redis://:redis-userinfo-s3cret@\(rdHost):\(rdPort)/0", ["pg-userinfo-s3cret", "redis-userinfo-s3cret"]),
            ("\(postgres)?sslmode=prefer&password=pg-query-s3cret",
             "redis://\(rdHost):\(rdPort)/0?password=redis-query-s3cret", ["pg-query-s3cret", "redis-query-s3cret"]),
            ("host=\(pgHost) port=\(pgPort) user=\(user) password='pg kw-s3cret' dbname=\(db)",
             "redis://redis-bare-s3cret@\(rdHost):\(rdPort)/0", ["kw-s3cret", "redis-bare-s3cret"]),
        ]
    }

    @Test("secrets in REACH_POSTGRES_URL (URL user info, ?password=, keyword string), REACH_REDIS_URL (:pw@, pw@, ?password=) and token variables never appear in the output of config check or serve")
    func secretsNeverPrinted() async throws {
        let forms = try Self.secretForms(postgres: try await TestDatabase.migrated(), redis: try TestEnvironment.redisURL())
        let token = "tok-s3cret-7f2a"
        let config = try writeConfig("""
            auth:
              tokens: [{name: ops, scope: write, token_env: REACH_OPS_TOKEN}]
            """)
        for form in forms {
            let environment = ["REACH_POSTGRES_URL": form.postgres, "REACH_REDIS_URL": form.redis, "REACH_OPS_TOKEN": token]
            let check = try spawnReachd(["config", "check", "--config", config], environment: environment)
            #expect(try await check.wait(within: .seconds(10)) == 0, "\(check.output)")
            let checked = check.output
            #expect(checked.contains("configuration OK") && checked.contains("postgres.url") && checked.contains("***"), "\(checked)")
            for secret in form.secrets + [token] {
                #expect(!checked.contains(secret), "config check printed \(secret): \(checked)")
            }

            let port = try TestEnvironment.freePort()
            let serve = try spawnReachd(["serve", "--config", config], environment: environment.merging([
                "REACH_HTTP_HOST": "127.0.0.1", "REACH_HTTP_PORT": "\(port)", "REACH_SHUTDOWN_GRACE_PERIOD_MS": "3000",
            ]) { _, n in n })
            let started = try await eventually(timeout: .seconds(30)) { serve.output.contains("reachd starting") }
            // Let it try Redis (these passwords are wrong for the test server, so AUTH errors get logged too).
            try await Task.sleep(for: .seconds(2))
            serve.signal(SIGTERM)
            _ = try await serve.wait(within: .seconds(10))
            let log = serve.output
            #expect(started, "serve did not start: \(log)")
            for secret in form.secrets + [token] {
                #expect(!log.contains(secret), "serve printed \(secret): \(log)")
            }
        }
    }

    @Test("reachd dev-kafka prints its bootstrap address first, and a client can use it")
    func devKafka() async throws {
        let broker = try spawnReachd(["dev-kafka", "--partitions", "2"])
        var bootstrap = ""
        _ = try await eventually(timeout: .seconds(10)) {
            bootstrap = broker.output.split(separator: "\n").first.map(String.init) ?? ""
            return bootstrap.contains(":")
        }
        #expect(bootstrap.hasPrefix("127.0.0.1:") || bootstrap.hasPrefix("localhost:"), "first line: \(bootstrap)")
        let producer = try KafkaProducer(configuration: .init(bootstrapServers: bootstrap))
        let report = try await producer.send(topic: "reach.tasks", key: "k", value: "{}")
        #expect(report.topic == "reach.tasks" && report.offset == 0)
        broker.signal(SIGTERM)
        #expect(try await broker.wait(within: .seconds(10)) == 0)
    }
}
