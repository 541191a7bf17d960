import Foundation
import ReachCore
import ReachDevTools
import ReachKafka
import ReachPostgres
import ReachService
import Testing
import TestSupport

// Issue 9's process-level fault tests: a live reachd (never killed) sends no
// message twice and loses none — with two instances in one group, with one of
// them frozen past its lease, through a Redis freeze and a PostgreSQL crash —
// and pause/cancel stop provider requests within 2 s under a rate limit.
//
// Everything goes through the public doors only: tasks on reach.tasks, the
// rows of reach.deliveries / reach.campaigns, a Redis or PostgreSQL server the
// test owns, and DevProviders the test runs (each records every request's
// arrival and ids). Nothing here knows how the runner is built inside.
//
// Each test prints one "never-twice:" line with what it measured, so the
// figures are in the log whether it passes or fails.

/// A `reachd serve` child process, ready (its /readyz answered 200).
struct ReachdProcess {
    let process: SpawnedProcess
    let port: Int
    var pid: pid_t { process.pid }
    var output: String { String(process.output.suffix(3_000)) }

    /// Still the process the test started (it has not exited).
    var isRunning: Bool {
        var status: Int32 = 0
        return waitpid(pid, &status, WNOHANG) == 0
    }

    func freeze() { process.signal(SIGSTOP) }
    func thaw() { process.signal(SIGCONT) }

    /// Kills it (a frozen one too) and reaps it.
    func kill() {
        process.signal(SIGCONT)
        process.signal(SIGKILL)
        _ = process.waitBlocking()
    }
}

/// Spawns `reachd serve` from the built binary with a YAML config and waits until it is ready.
/// `channels`: one YAML line per channel, e.g. `sms: {provider: http, url: "…"}`.
func startReachd(kafka: EmbeddedKafka, group: String, postgres: String, redis: String, prefix: String,
                 pipeline: String, channels: [String]) async throws -> ReachdProcess {
    // A port found free may be taken by another test before reachd binds it:
    // then reachd exits with "address already in use", and it is tried on another.
    for attempt in 1...3 {
        let port = try TestEnvironment.freePort()
        let config = try writeConfig("""
            kafka: {brokers: "\(kafka.bootstrapServers)", group_id: "\(group)"}
            postgres: {url: "\(postgres)"}
            redis: {url: "\(redis)", prefix: "\(prefix)"}
            http: {host: 127.0.0.1, port: \(port)}
            pipeline: {\(pipeline)}
            quiet_hours: {start: "00:00", end: "00:00"}
            log: {level: info, format: json}
            channels:
            \(channels.map { "  " + $0 }.joined(separator: "\n"))
            """)
        let process = try spawn(TestEnvironment.reachdBinary.path, ["serve", "--config", config])
        let daemon = ReachdProcess(process: process, port: port)
        let ready = try await eventually(timeout: .seconds(30), every: .milliseconds(100)) {
            guard daemon.isRunning else { return true }
            return (try? await get("http://127.0.0.1:\(port)/readyz"))?.status == 200
        }
        if ready && daemon.isRunning { return daemon }
        if !daemon.isRunning && attempt < 3 && process.output.lowercased().contains("address already in use") { continue }
        process.signal(SIGKILL)
        _ = process.waitBlocking()
        throw ProcessFailure(command: ready ? "reachd serve (exited)" : "reachd serve (not ready in 30 s)", status: -1,
                             output: crashReport(process.output))
    }
    throw ProcessFailure(command: "reachd serve", status: -1, output: "no free port in 3 attempts")
}

/// The end of a daemon's output, and — when it crashed — the crash's first
/// lines (the runtime's backtrace follows them and would push them out of the tail).
func crashReport(_ output: String) -> String {
    let tail = String(output.suffix(3_000))
    guard let crash = output.range(of: "💣") ?? output.range(of: "Fatal error") else { return tail }
    return String(output[crash.lowerBound...].prefix(1_500)) + "\n…\n" + tail
}

/// `count` daemons in one group (one database, one Redis prefix), each with its
/// own recording DevProvider; `channel` gives the YAML line of the `sms`
/// channel for a provider port. `stop` kills the daemons still running and the providers.
func startInstances(_ count: Int, kafka: EmbeddedKafka, group: String, postgres: String, prefix: String, pipeline: String,
                    providerDelay: Duration = .zero, redis: String? = nil,
                    channel: (Int) -> String) async throws -> ([DevProvider], [ReachdProcess], @Sendable () -> Void) {
    var providers: [DevProvider] = []
    var tasks: [Task<Void, any Error>] = []
    var daemons: [ReachdProcess] = []
    for _ in 0..<count {
        let provider = DevProvider(delay: providerDelay, recordRequests: true)
        let (port, task) = try await startProvider(provider)
        providers.append(provider)
        tasks.append(task)
        daemons.append(try await startReachd(kafka: kafka, group: group, postgres: postgres, redis: try redis ?? TestEnvironment.redisURL(),
                                             prefix: prefix, pipeline: pipeline, channels: [channel(port)]))
    }
    let running = daemons, providerTasks = tasks
    return (providers, daemons, { for d in running where d.isRunning { d.kill() }; for t in providerTasks { t.cancel() } })
}

/// What reach.deliveries holds for one campaign.
struct DeliveryTally: CustomStringConvertible {
    var rows = 0
    var users = 0
    /// "sent", "skipped/opted_out", "skipped/cancelled", …
    var byStatus: [String: Int] = [:]
    /// message_id of every `sent` row.
    var sent: Set<String> = []

    var description: String { "\(rows) rows, \(users) users, \(byStatus.sorted { $0.key < $1.key })" }

    static func of(_ pg: PostgresClient, _ id: String) async throws -> DeliveryTally {
        var t = DeliveryTally()
        let counts = try await pg.query("SELECT count(*), count(DISTINCT user_id) FROM reach.deliveries WHERE campaign_id = $1", [id]).first
        t.rows = counts?.int(0) ?? 0
        t.users = counts?.int(1) ?? 0
        for row in try await pg.query("""
            SELECT status || coalesce('/' || reason, ''), count(*) FROM reach.deliveries WHERE campaign_id = $1 GROUP BY 1
            """, [id]) {
            t.byStatus[row[0] ?? "?"] = row.int(1) ?? 0
        }
        t.sent = Set(try await pg.query("SELECT message_id FROM reach.deliveries WHERE campaign_id = $1 AND status = 'sent'", [id])
            .compactMap { $0[0] })
        return t
    }
}

/// The campaign's successive owners (reach.campaigns.owner), sampled every 50 ms
/// until the task is cancelled: how often the lease changed hands.
func ownerChanges(_ url: String, _ id: String) -> Task<[String], Never> {
    Task {
        let pg = PostgresClient(url: url, poolSize: 1)
        var owners: [String] = []
        while !Task.isCancelled {
            if let owner = try? await pg.query("SELECT owner FROM reach.campaigns WHERE id = $1", [id]).first?[0], owner != owners.last {
                owners.append(owner)
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return owners
    }
}

/// Ids a provider received more than once.
func twice(_ provider: DevProvider) -> Int { provider.received.values.filter { $0 > 1 }.count }

@Suite("never twice: a live reachd under a second instance, a frozen peer, Redis and PostgreSQL outages, pause and cancel",
       .serialized)
struct NeverTwiceTests {
    /// `REACH_NEVER_TWICE_FULL=1`: issue 9's own sizes (30 000 users for two
    /// instances, 100 000, the default page size and a 30 s outage for Redis
    /// and PostgreSQL), by hand;
    /// the suite's default sizes keep each test under a minute.
    static let full = ProcessInfo.processInfo.environment["REACH_NEVER_TWICE_FULL"] == "1"
    static let budget: Duration = full ? .seconds(240) : .seconds(60)
    static let terminal: Set<String> = ["sent", "skipped/opted_out", "skipped/no_address", "skipped/cancelled"]

    /// Every user exactly one terminal row; the sent rows are exactly the ids the providers got.
    func expectEveryUserOnce(_ tally: DeliveryTally, users: Int, received: Set<String>, allowed: Set<String> = terminal,
                             sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(tally.rows == users && tally.users == users, "every user one row: \(tally)", sourceLocation: sourceLocation)
        let other = tally.byStatus.filter { !allowed.contains($0.key) }
        #expect(other.count == 0, "rows in no terminal state: \(other)", sourceLocation: sourceLocation)
        let lost = tally.sent.subtracting(received).count
        let unrecorded = received.subtracting(tally.sent).count
        #expect(lost == 0 && unrecorded == 0,
                "sent rows == ids at the providers: \(lost) sent row(s) never reached a provider, \(unrecorded) id(s) reached one without a sent row",
                sourceLocation: sourceLocation)
    }

    func expectCounters(_ pg: PostgresClient, _ id: String, _ tally: DeliveryTally, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let counters = try await CampaignStore(client: pg).status(id)?.counters
        #expect(counters?.targeted == tally.rows && counters?.sent == tally.byStatus["sent"] ?? 0,
                "campaign counters match the rows: \(String(describing: counters)) vs \(tally)", sourceLocation: sourceLocation)
    }

    // MARK: two instances

    struct TwoInstances {
        let kafka: EmbeddedKafka
        let pg: PostgresClient
        let url: String
        let providers: [DevProvider]
        let daemons: [ReachdProcess]
        let stop: @Sendable () -> Void
    }

    /// Two `reachd serve` in one consumer group, one database, one Redis prefix;
    /// each with its own DevProvider (same channel names, different ports).
    func twoInstances(users: Int, ratePerSecond: Int, pageSize: Int) async throws -> TwoInstances {
        let kafka = try embeddedKafka()
        let url = try await seededDatabase(count: users)
        let group = TestEnvironment.unique("nt-group")
        let prefix = TestEnvironment.unique("nt") + ":"
        let (providers, daemons, stop) = try await startInstances(
            2, kafka: kafka, group: group, postgres: url, prefix: prefix,
            pipeline: "lease_ms: 3000, page_size: \(pageSize), poll_interval_ms: 200") { port in
            #"sms: {provider: http, url: "http://127.0.0.1:\#(port)/sms", batch_size: 100, rate_per_second: \#(ratePerSecond)}"#
        }
        return TwoInstances(kafka: kafka, pg: PostgresClient(url: url, poolSize: 1), url: url, providers: providers, daemons: daemons, stop: stop)
    }

    // page_size 500: a page costs ~0.8 s of rate-limit debt, so today's once-per-page
    // renewal happens to keep the 3 s lease. page_size 5 000 (the default, what
    // issue 9 measured with): one page costs ~8 s, longer than the lease, so it
    // lapses while the holder is still sending and the other instance starts over.
    @Test("two reachd in one group, one campaign at 500/s with a 3 s lease: every user once, no id at both providers, none twice at one",
          arguments: [500, 5_000])
    func twoInstancesOneCampaign(pageSize: Int) async throws {
        let users = Self.full ? 30_000 : 6_000
        let id = "nt-two-\(pageSize)"
        let setup = try await twoInstances(users: users, ratePerSecond: 500, pageSize: pageSize)
        defer { setup.stop() }
        let owners = ownerChanges(setup.url, id)
        defer { owners.cancel() }
        let started = ContinuousClock.now
        try await publish(setup.kafka, #"{"kind":"campaign","campaign_id":"\#(id)","segment":{"id":"all"},"channels":{"sms":1},"template":{"body":"hi {{name}}"}}"#,
                          key: id)
        let done = try await waitForCampaign(setup.pg, id, timeout: Self.budget)
        #expect(done, "campaign not done: \(setup.daemons.map(\.output))")
        owners.cancel()
        let ownersSeen = await owners.value
        let handOvers = max(0, ownersSeen.count - 1)

        let a = Set(setup.providers[0].received.keys), b = Set(setup.providers[1].received.keys)
        let both = a.intersection(b).count
        let twiceAtOne = setup.providers.map(twice)
        let tally = try await DeliveryTally.of(setup.pg, id)
        print("never-twice: two instances, page_size \(pageSize): \(both) id(s) at both providers, \(twiceAtOne) id(s) twice at one provider, "
              + "provider A \(a.count) / B \(b.count) ids, \(tally.byStatus["sent"] ?? 0) sent rows, the lease changed hands \(handOvers) time(s); \(tally); "
              + "\(String(format: "%.1f", (ContinuousClock.now - started).seconds)) s")
        #expect(both == 0, "no message id reached both providers: \(both)")
        #expect(twiceAtOne == [0, 0], "no message id reached one provider twice: \(twiceAtOne)")
        expectEveryUserOnce(tally, users: users, received: a.union(b))
        try await expectCounters(setup.pg, id, tally)
    }

    @Test("one of two reachd frozen (SIGSTOP) 6 s past its 3 s lease, then resumed: nothing at both providers, it sends nothing new, every user once")
    func frozenInstance() async throws {
        let users = 6_000
        // page_size 500: without the freeze the lease holds today (see above), so what this measures is the freeze.
        let setup = try await twoInstances(users: users, ratePerSecond: 500, pageSize: 500)
        defer { setup.stop() }
        let started = ContinuousClock.now
        try await publish(setup.kafka, #"{"kind":"campaign","campaign_id":"nt-frozen","segment":{"id":"all"},"channels":{"sms":1},"template":{"body":"hi {{name}}"}}"#,
                          key: "nt-frozen")

        // Freeze the instance holding the campaign once it has sent a while, at a
        // moment it waits on the rate limit: 50–150 ms after its latest request
        // arrived (at 500/s a batch of 100 costs 200 ms of tokens, and the
        // provider answers at once). Then no request of it is on the wire or
        // unanswered, so anything that reaches both providers afterwards is a
        // fencing failure, not the crash window of a request frozen mid-flight.
        // For the same reason every request that arrives at its provider after
        // SIGCONT is a new one, sent after its lease ran out: none may arrive
        // (the issue's looser "none more than 1 s after" is printed too; today
        // every late request falls inside that second).
        var frozenIndex: Int?
        let deadline = ContinuousClock.now + .seconds(40)
        while frozenIndex == nil && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
            guard let owner = try? await setup.pg.query("SELECT owner FROM reach.campaigns WHERE id = 'nt-frozen'").first?[0] else { continue }
            let parts = owner.split(separator: "/")
            guard parts.count >= 2, let pid = pid_t(parts[parts.count - 2]),
                  let index = setup.daemons.firstIndex(where: { $0.pid == pid }) else { continue }
            let requests = setup.providers[index].requests
            guard requests.reduce(0, { $0 + $1.messageIDs.count }) >= 600, let last = requests.last?.arrivedAt else { continue }
            let quiet = Date().timeIntervalSince(last)
            guard quiet >= 0.05 && quiet <= 0.15 else { continue }
            setup.daemons[index].freeze()
            frozenIndex = index
        }
        guard let frozen = frozenIndex else {
            Issue.record("the campaign never settled on an instance to freeze: \(setup.daemons.map(\.output))")
            return
        }
        let frozenProvider = setup.providers[frozen]
        let sentBeforeFreeze = Set(frozenProvider.received.keys).count
        try await Task.sleep(for: .seconds(6))
        setup.daemons[frozen].thaw()
        let resumedAt = Date()

        let done = try await waitForCampaign(setup.pg, "nt-frozen", timeout: .seconds(60))
        #expect(done, "campaign not done: \(setup.daemons.map(\.output))")
        try await Task.sleep(for: .seconds(1))  // anything the resumed instance still had to send has arrived

        let a = Set(setup.providers[0].received.keys), b = Set(setup.providers[1].received.keys)
        let both = a.intersection(b).count
        let twiceAtOne = setup.providers.map(twice)
        let afterResume = frozenProvider.requests.filter { $0.arrivedAt > resumedAt }
        let late = afterResume.filter { $0.arrivedAt > resumedAt.addingTimeInterval(1) }
        let tally = try await DeliveryTally.of(setup.pg, "nt-frozen")
        print("never-twice: frozen instance: \(both) id(s) at both providers, \(twiceAtOne) id(s) twice at one provider; "
              + "the frozen instance had sent \(sentBeforeFreeze) ids, after SIGCONT it sent \(afterResume.count) request(s) "
              + "(\(afterResume.reduce(0) { $0 + $1.messageIDs.count }) ids), \(late.count) of them more than 1 s later "
              + "(\(late.reduce(0) { $0 + $1.messageIDs.count }) ids); \(tally); "
              + "\(String(format: "%.1f", (ContinuousClock.now - started).seconds)) s")
        #expect(both == 0, "no message id reached both providers: \(both)")
        #expect(twiceAtOne == [0, 0], "no message id reached one provider twice: \(twiceAtOne)")
        #expect(afterResume.count == 0 && late.count == 0,
                "the resumed instance sent \(afterResume.count) request(s) after SIGCONT, \(late.count) of them more than 1 s after")
        expectEveryUserOnce(tally, users: users, received: a.union(b))
        try await expectCounters(setup.pg, "nt-frozen", tally)
    }

    // MARK: dependency outages

    /// sms/push/email all through `providerPort`: batch 100, 4 concurrent each, no rate limit.
    static func openChannels(_ providerPort: Int) -> [String] {
        ["sms", "push", "email"].map {
            #"\#($0): {provider: http, url: "http://127.0.0.1:\#(providerPort)/\#($0)", batch_size: 100, concurrency: 4}"#
        }
    }

    /// Pages of 500 in the suite; the default page size (5 000) at full size, as issue 9 measured.
    static let outagePipeline = full ? "poll_interval_ms: 200" : "page_size: 500, poll_interval_ms: 200"

    static let mixedCampaign = #""segment":{"id":"all"},"channels":{"sms":70,"push":30},"fallback":["email"],"template":{"body":"hi {{name}}"}}"#

    @Test("Redis frozen (SIGSTOP) 10 s in the middle of a 30 000-user campaign: 0 duplicates, 0 lost, done without restarting reachd")
    func redisFrozen() async throws {
        let users = Self.full ? 100_000 : 30_000
        let outage: Duration = Self.full ? .seconds(30) : .seconds(10)
        let redis = try await RedisServerProcess.start()
        defer { redis.thaw() }
        let kafka = try embeddedKafka()
        let provider = DevProvider(delay: .milliseconds(5), recordRequests: true)
        let (providerPort, providerTask) = try await startProvider(provider)
        defer { providerTask.cancel() }
        let url = try await seededDatabase(count: users)
        let pg = PostgresClient(url: url, poolSize: 1)
        let reachd = try await startReachd(kafka: kafka, group: TestEnvironment.unique("nt-g"), postgres: url, redis: redis.url,
                                           prefix: TestEnvironment.unique("nt") + ":", pipeline: Self.outagePipeline,
                                           channels: Self.openChannels(providerPort))
        defer { reachd.kill() }
        let started = ContinuousClock.now
        try await publish(kafka, #"{"kind":"campaign","campaign_id":"nt-redis",\#(Self.mixedCampaign)"#, key: "nt-redis")
        let midway = try await eventually(timeout: .seconds(40), every: .milliseconds(10)) { provider.stats.messages >= 4_000 }
        #expect(midway, "the campaign never got going: \(reachd.output)")
        redis.freeze()
        let atFreeze = provider.stats.messages
        try await Task.sleep(for: outage)
        let duringFreeze = provider.stats.messages - atFreeze
        redis.thaw()

        let done = try await waitForCampaign(pg, "nt-redis", timeout: Self.budget)
        #expect(done, "campaign not done after Redis came back: \(reachd.output)")
        #expect(reachd.isRunning, "the same reachd finished it: \(reachd.output)")
        let tally = try await DeliveryTally.of(pg, "nt-redis")
        let received = Set(provider.received.keys)
        let duplicates = twice(provider)
        print("never-twice: Redis frozen \(outage), \(users) users: \(duplicates) id(s) twice at the provider, \(users - tally.users) user(s) without a row, "
              + "\(tally.sent.subtracting(received).count) sent row(s) not at the provider, \(received.subtracting(tally.sent).count) id(s) at it without a sent row; "
              + "\(atFreeze) messages before the freeze, \(duringFreeze) during it; \(tally); "
              + "\(String(format: "%.1f", (ContinuousClock.now - started).seconds)) s")
        #expect(duplicates == 0, "no message id reached the provider twice: \(duplicates)")
        expectEveryUserOnce(tally, users: users, received: received)
        try await expectCounters(pg, "nt-redis", tally)
    }

    @Test("PostgreSQL killed (pg_ctl stop -m immediate) in the middle of a 30 000-user campaign, back on the same port after 10 s: 0 duplicates, 0 lost, no empty body, done without restarting reachd")
    func postgresKilled() async throws {
        let users = Self.full ? 100_000 : 30_000
        let outage: Duration = Self.full ? .seconds(30) : .seconds(10)
        let server = try await PostgresServerProcess.start()
        defer { withExtendedLifetime(server) {} }  // its deinit stops the cluster
        let kafka = try embeddedKafka()
        // 20 ms: pages are mostly on the wire when the server dies, the case that loses finished work today.
        let provider = DevProvider(delay: .milliseconds(20), recordRequests: true)
        let (providerPort, providerTask) = try await startProvider(provider)
        defer { providerTask.cancel() }
        let url = try await seededDatabase(count: users, adminURL: server.url)
        let reachd = try await startReachd(kafka: kafka, group: TestEnvironment.unique("nt-g"), postgres: url, redis: try TestEnvironment.redisURL(),
                                           prefix: TestEnvironment.unique("nt") + ":", pipeline: Self.outagePipeline,
                                           channels: Self.openChannels(providerPort))
        defer { reachd.kill() }
        let started = ContinuousClock.now
        try await publish(kafka, #"{"kind":"campaign","campaign_id":"nt-pg",\#(Self.mixedCampaign)"#, key: "nt-pg")
        let midway = try await eventually(timeout: .seconds(40), every: .milliseconds(10)) { provider.stats.messages >= 4_000 }
        #expect(midway, "the campaign never got going: \(reachd.output)")
        try await server.crash()
        let atKill = provider.stats.messages
        try await Task.sleep(for: outage)
        let whileDown = provider.stats.messages - atKill
        try await server.start()

        // A new client: the old one's connections died with the server.
        let pg = PostgresClient(url: url, poolSize: 1)
        let done = try await waitForCampaign(pg, "nt-pg", timeout: Self.budget)
        #expect(done, "campaign not done after PostgreSQL came back: \(reachd.output)")
        #expect(reachd.isRunning, "the same reachd finished it: \(reachd.output)")
        let tally = try await DeliveryTally.of(pg, "nt-pg")
        let received = Set(provider.received.keys)
        let duplicates = twice(provider)
        // Empty, cut off (-1 bytes), not a batch, or a batch of no messages.
        let invalid = provider.requests.filter { !$0.valid || $0.messageIDs.isEmpty }
        print("never-twice: PostgreSQL killed \(outage), \(users) users: \(duplicates) id(s) twice at the provider, \(users - tally.users) user(s) without a row, "
              + "\(tally.sent.subtracting(received).count) sent row(s) not at the provider, \(received.subtracting(tally.sent).count) id(s) at it without a sent row, "
              + "\(invalid.count) request(s) with an empty or invalid body (\(invalid.map(\.bodyBytes)) bytes); "
              + "\(atKill) messages before the kill, \(whileDown) while it was down; \(tally); "
              + "\(String(format: "%.1f", (ContinuousClock.now - started).seconds)) s")
        #expect(duplicates == 0, "no message id reached the provider twice: \(duplicates)")
        #expect(invalid.count == 0, "\(invalid.count) provider request(s) had an empty or invalid body")
        expectEveryUserOnce(tally, users: users, received: received)
        try await expectCounters(pg, "nt-pg", tally)
    }

    // MARK: control under a rate limit

    /// One reachd with `push` limited to 1 000/s through a provider answering in 50 ms; defaults otherwise.
    func rateLimitedPush(users: Int) async throws -> (kafka: EmbeddedKafka, provider: DevProvider, pg: PostgresClient, stop: @Sendable () -> Void) {
        let kafka = try embeddedKafka()
        let provider = DevProvider(delay: .milliseconds(50), recordRequests: true)
        let (providerPort, providerTask) = try await startProvider(provider)
        let url = try await seededDatabase(count: users)
        let reachd = try await startReachd(kafka: kafka, group: TestEnvironment.unique("nt-g"), postgres: url, redis: try TestEnvironment.redisURL(),
                                           prefix: TestEnvironment.unique("nt") + ":", pipeline: "poll_interval_ms: 200",
                                           channels: [#"push: {provider: http, url: "http://127.0.0.1:\#(providerPort)/push", rate_per_second: 1000}"#])
        return (kafka, provider, PostgresClient(url: url, poolSize: 1), { reachd.kill(); providerTask.cancel() })
    }

    /// Waits until no request has arrived for 3 s (at most `limit`).
    func waitForSilence(_ provider: DevProvider, limit: Duration = .seconds(25)) async throws {
        _ = try await eventually(timeout: limit, every: .milliseconds(100)) {
            Date().timeIntervalSince(provider.requests.last?.arrivedAt ?? .distantPast) > 3
        }
    }

    @Test("pause a 20 000-user campaign on push at 1 000/s with a 50 ms provider: no request more than 2 s after it; resume finishes, every user once")
    func pauseUnderRateLimit() async throws {
        let users = 20_000
        let (kafka, provider, pg, stop) = try await rateLimitedPush(users: users)
        defer { stop() }
        let started = ContinuousClock.now
        try await publish(kafka, #"{"kind":"campaign","campaign_id":"nt-pause","segment":{"id":"all"},"channels":{"push":1},"template":{"body":"hi {{name}}"}}"#,
                          key: "nt-pause")
        #expect(try await eventually(timeout: .seconds(30), every: .milliseconds(10)) { provider.stats.messages >= 2_000 })
        try await publish(kafka, #"{"kind":"pause","campaign_id":"nt-pause"}"#, key: "nt-pause")
        let pausedAt = Date()
        let atPause = provider.stats.messages
        #expect(try await eventually(timeout: .seconds(10)) { try await campaignState(pg, "nt-pause") == "paused" })
        try await waitForSilence(provider)
        let afterPause = provider.requests.filter { $0.arrivedAt > pausedAt }
        let late = afterPause.filter { $0.arrivedAt > pausedAt.addingTimeInterval(2) }
        let lastOffset = afterPause.last.map { $0.arrivedAt.timeIntervalSince(pausedAt) } ?? 0
        let rowsPaused = try await rows(pg, "nt-pause")
        print("never-twice: pause: \(late.count) request(s) (\(late.reduce(0) { $0 + $1.messageIDs.count }) ids) more than 2 s after the pause; "
              + "the last arrived \(String(format: "%.2f", lastOffset)) s after it; \(atPause) messages at the pause, "
              + "\(afterPause.reduce(0) { $0 + $1.messageIDs.count }) after it; \(rowsPaused) rows while paused")
        #expect(late.count == 0, "\(late.count) provider request(s) arrived more than 2 s after the pause (the last \(lastOffset) s after)")
        #expect(rowsPaused < users, "paused before the end")

        try await publish(kafka, #"{"kind":"resume","campaign_id":"nt-pause"}"#, key: "nt-pause")
        #expect(try await waitForCampaign(pg, "nt-pause", timeout: .seconds(60)), "not done after resume")
        let tally = try await DeliveryTally.of(pg, "nt-pause")
        let duplicates = twice(provider)
        print("never-twice: pause/resume: \(duplicates) id(s) twice at the provider; \(tally); "
              + "\(String(format: "%.1f", (ContinuousClock.now - started).seconds)) s")
        #expect(duplicates == 0, "no message id reached the provider twice: \(duplicates)")
        expectEveryUserOnce(tally, users: users, received: Set(provider.received.keys))
        try await expectCounters(pg, "nt-pause", tally)
    }

    @Test("cancel a 5 000-user campaign on push at 1 000/s with a 50 ms provider after ~300 sends: no request more than 2 s after it, the rest skipped/cancelled, every user once")
    func cancelUnderRateLimit() async throws {
        let users = 5_000
        let (kafka, provider, pg, stop) = try await rateLimitedPush(users: users)
        defer { stop() }
        let started = ContinuousClock.now
        try await publish(kafka, #"{"kind":"campaign","campaign_id":"nt-cancel","segment":{"id":"all"},"channels":{"push":1},"template":{"body":"hi {{name}}"}}"#,
                          key: "nt-cancel")
        #expect(try await eventually(timeout: .seconds(30), every: .milliseconds(5)) { provider.stats.messages >= 300 })
        try await publish(kafka, #"{"kind":"cancel","campaign_id":"nt-cancel"}"#, key: "nt-cancel")
        let cancelledAt = Date()
        let atCancel = provider.stats.messages
        let over = try await eventually(timeout: .seconds(30)) {
            try await pg.query("SELECT finished_at IS NOT NULL FROM reach.campaigns WHERE id = 'nt-cancel'").first?[0] == "t"
        }
        #expect(over, "the cancelled campaign never finished")
        try await waitForSilence(provider, limit: .seconds(10))
        let afterCancel = provider.requests.filter { $0.arrivedAt > cancelledAt }
        let late = afterCancel.filter { $0.arrivedAt > cancelledAt.addingTimeInterval(2) }
        let lastOffset = afterCancel.last.map { $0.arrivedAt.timeIntervalSince(cancelledAt) } ?? 0
        let tally = try await DeliveryTally.of(pg, "nt-cancel")
        let duplicates = twice(provider)
        let state = try await campaignState(pg, "nt-cancel")
        print("never-twice: cancel: \(tally.byStatus["skipped/cancelled"] ?? 0) user(s) skipped/cancelled, \(tally.byStatus["sent"] ?? 0) sent "
              + "(\(atCancel) at the cancel); \(late.count) request(s) (\(late.reduce(0) { $0 + $1.messageIDs.count }) ids) more than 2 s after it, "
              + "the last \(String(format: "%.2f", lastOffset)) s after; \(duplicates) id(s) twice; state \(state ?? "-"); \(tally); "
              + "\(String(format: "%.1f", (ContinuousClock.now - started).seconds)) s")
        #expect(state == "cancelled")
        #expect(late.count == 0, "\(late.count) provider request(s) arrived more than 2 s after the cancel (the last \(lastOffset) s after)")
        // At 1 000/s, 2 s after a cancel at ~300 sends most of the 5 000 are still unsent.
        #expect((tally.byStatus["skipped/cancelled"] ?? 0) >= users / 2, "the rest are skipped/cancelled: \(tally)")
        #expect(duplicates == 0, "no message id reached the provider twice: \(duplicates)")
        expectEveryUserOnce(tally, users: users, received: Set(provider.received.keys))
        try await expectCounters(pg, "nt-cancel", tally)
    }
}
