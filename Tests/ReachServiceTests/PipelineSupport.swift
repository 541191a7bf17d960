import Foundation
import Logging
import ReachDevTools
import ReachKafka
import ReachPostgres
import ReachRedis
import ReachService
import ServiceLifecycle
import Synchronization
import TestSupport

/// Starts a DevProvider on a free port; cancel the task to stop it.
func startProvider(_ provider: DevProvider) async throws -> (Int, Task<Void, any Error>) {
    let port = Mutex<Int?>(nil)
    let app = provider.makeApplication(host: "127.0.0.1", port: 0, logger: Logger(label: "dev-provider")) { p in
        port.withLock { $0 = p }
    }
    let task = Task { try await app.runService() }
    // Generous: on a loaded machine (parallel suites, builds) binding can take seconds.
    guard try await eventually(timeout: .seconds(30), { port.withLock { $0 } != nil }) else {
        task.cancel()
        throw TestEnvironment.Missing(name: "dev provider did not start")
    }
    return (port.withLock { $0 }!, task)
}

/// A migrated database seeded with `count` recipients `u00001…`:
/// every 10th has no phone, every 7th opted out of sms, every 50th opted out of everything.
/// `adminURL`: seed a new database on that server instead of the shared one.
func seededDatabase(count: Int, segment: String = "all", adminURL: String? = nil) async throws -> String {
    let url = try await TestDatabase.migrated(adminURL: adminURL)
    let pg = PostgresClient(url: url, poolSize: 1)
    let rows: [[String?]] = (1...count).map { i in
        let id = String(format: "u%05d", i)
        return [id, "User \(i)", i % 10 == 0 ? nil : String(format: "138%08d", i), "user\(i)@example.com",
                "tok-\(i)", i % 3 == 0 ? "Asia/Shanghai" : "UTC", "zh-CN", "{\"level\": \(i % 5), \"city\": \"C\(i % 4)\"}"]
    }
    _ = try await pg.withConnection { conn in
        try await conn.copyIn("COPY reach.recipients (user_id, name, phone, email, push_token, timezone, locale, attrs) FROM STDIN", rows: rows)
        try await conn.query("INSERT INTO reach.segments (id, name) VALUES ($1, 'everyone')", [segment])
        try await conn.query("INSERT INTO reach.segment_members SELECT $1, user_id FROM reach.recipients", [segment])
        try await conn.query("""
            INSERT INTO reach.preferences (user_id, channel, opted_out)
            SELECT user_id, 'sms', true FROM reach.recipients WHERE substr(user_id, 2)::int % 7 = 0
            UNION ALL
            SELECT user_id, '*', true FROM reach.recipients WHERE substr(user_id, 2)::int % 50 = 0
            """)
    }
    return url
}

func pipelineConfiguration(kafka: EmbeddedKafka, postgresURL: String, providerPort: Int, logPath: String) throws -> ReachConfiguration {
    var c = ReachConfiguration()
    c.kafka.brokers = kafka.bootstrapServers
    c.kafka.groupID = TestEnvironment.unique("reachd")
    c.postgres.url = postgresURL
    c.redis.url = try TestEnvironment.redisURL()
    c.redis.prefix = TestEnvironment.unique("t") + ":"
    c.http.host = "127.0.0.1"
    c.http.port = 0
    c.pipeline.pageSize = 500
    c.pipeline.pollIntervalMs = 200
    // start == end: no quiet hours, so tests behave the same at any hour of the day.
    c.quietHours.start = "00:00"
    c.quietHours.end = "00:00"
    var sms = ChannelSettings()
    sms.provider = "http"
    sms.url = "http://127.0.0.1:\(providerPort)/sms"
    sms.batchSize = 100
    var push = ChannelSettings()
    push.provider = "http"
    push.url = "http://127.0.0.1:\(providerPort)/push"
    push.batchSize = 250
    var email = ChannelSettings()
    email.provider = "log"
    email.path = logPath
    var inapp = ChannelSettings()
    inapp.provider = "inbox"
    c.channels = ["sms": sms, "push": push, "email": email, "inapp": inapp]
    return c
}

func embeddedKafka() throws -> EmbeddedKafka {
    try EmbeddedKafka(topics: ["reach.tasks": 2, "reach.events": 2, "reach.dlq": 1])
}

func publish(_ kafka: EmbeddedKafka, _ json: String, key: String? = nil, topic: String = "reach.tasks") async throws {
    let producer = try KafkaProducer(configuration: .init(bootstrapServers: kafka.bootstrapServers))
    try await producer.send(topic: topic, key: key, value: json)
}

func campaignState(_ pg: PostgresClient, _ id: String) async throws -> String? {
    try await pg.query("SELECT state FROM reach.campaigns WHERE id = $1", [id]).first?[0]
}

func waitForCampaign(_ pg: PostgresClient, _ id: String, state: String = "done", timeout: Duration = .seconds(60)) async throws -> Bool {
    try await eventually(timeout: timeout, every: .milliseconds(100)) { try await campaignState(pg, id) == state }
}

/// What a pipeline test runs against: the embedded broker, a started dev
/// provider, a seeded database, and the configuration that points at them.
struct PipelineFixture {
    let kafka: EmbeddedKafka
    let provider: DevProvider
    let url: String
    let pg: PostgresClient
    var configuration: ReachConfiguration
    let providerTask: Task<Void, any Error>

    static func make(users: Int, provider: DevProvider = DevProvider()) async throws -> PipelineFixture {
        let kafka = try embeddedKafka()
        let (providerPort, providerTask) = try await startProvider(provider)
        let url = try await seededDatabase(count: users)
        let configuration = try pipelineConfiguration(kafka: kafka, postgresURL: url, providerPort: providerPort,
                                                      logPath: FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.unique("e")).path)
        return PipelineFixture(kafka: kafka, provider: provider, url: url, pg: PostgresClient(url: url, poolSize: 1),
                               configuration: configuration, providerTask: providerTask)
    }

    func stop() { providerTask.cancel() }
}
