import Foundation
import Hummingbird
import ReachCore
import ReachKafka
import ReachPostgres
import ReachRedis
import Synchronization

/// The `/v1` routes of SPEC §7. Each group lives in its own file
/// (`OperatorAPI+Campaigns.swift`, …); this is what they share.
public struct OperatorAPI: Sendable {
    let postgres: PostgresClient
    let producer: KafkaProducer
    let tasksTopic: String
    let parser: TaskParser
    let channels: [String: ChannelSettings]
    let controls: CampaignControls
    let rules: TriggerRules?
    let replay: DeadLetterReplay
    let switches: ChannelSwitches
    /// This process's circuit breakers, for `GET /v1/channels` (nil: not reported).
    let breakers: ChannelBreakers?
    let breakdowns = BreakdownCache()
    let summaries = SingleFlight<CampaignStore.Summary?>()
    let previewTimeout: Duration

    public init(infrastructure: Infrastructure, rules: TriggerRules?, wake: @escaping @Sendable () -> Void,
                breakers: ChannelBreakers? = nil, previewTimeout: Duration = .seconds(5)) {
        let c = infrastructure.configuration
        self.postgres = infrastructure.apiPostgres
        self.producer = infrastructure.producer
        self.tasksTopic = c.kafka.topics.tasks
        self.parser = TaskParser(channels: Set(c.channels.keys))
        self.channels = c.channels
        self.controls = CampaignControls(store: CampaignStore(client: infrastructure.apiPostgres), wake: wake)
        self.rules = rules
        self.replay = DeadLetterReplay(postgres: infrastructure.apiPostgres, queue: infrastructure.delayQueue)
        self.switches = infrastructure.channelSwitches
        self.breakers = breakers
        self.previewTimeout = previewTimeout
    }

    /// Every `/v1` route; the router is built from this list and the OpenAPI test compares it with the document.
    public var routes: [APIRoute] {
        campaignRoutes + segmentRoutes + triggerRoutes + deadLetterRoutes + inboxRoutes + channelRoutes + auditRoutes
    }

    var campaigns: CampaignStore { CampaignStore(client: postgres) }

    /// `next` of a page: the last item's cursor when the page is full.
    static func next<T>(_ items: [T], limit: Int, _ cursor: (T) -> String) -> String? {
        items.count == limit ? items.last.map(cursor) : nil
    }

    static func object(_ pairs: [(String, String)]) -> String {
        var w = JSONObjectWriter()
        for (key, json) in pairs { w.add(key, json: json) }
        return w.finish()
    }

    static func quoted(_ s: String?) -> String { s.map(JSONText.quote) ?? "null" }
}

/// Per-campaign delivery breakdowns, so a dashboard polling a running
/// million-row campaign does not scan its rows on every request: an answer
/// younger than `fresh` is served as is; an older one (up to `stale`) is served
/// while one refresh runs behind it; callers never queue behind each other's
/// scans, and at most one scan per campaign runs at a time (`SingleFlight`).
final class BreakdownCache: Sendable {
    typealias Value = [CampaignStore.Breakdown]
    private let entries = Mutex<[String: (value: Value, at: ContinuousClock.Instant)]>([:])
    private let loads = SingleFlight<Value>()
    let fresh: Duration
    let stale: Duration

    init(fresh: Duration = .seconds(1), stale: Duration = .seconds(5)) {
        self.fresh = fresh
        self.stale = stale
    }

    func get(_ id: String, _ load: @escaping @Sendable () async throws -> Value) async throws -> Value {
        let now = ContinuousClock.now
        let cached = entries.withLock { all -> (value: Value, at: ContinuousClock.Instant)? in
            if all.count > 1_000 { all = all.filter { now - $0.value.at < stale } }
            return all[id]
        }
        if let cached, now - cached.at < fresh { return cached.value }
        let refresh = { [self] in
            let value = try await loads.run(id, load)
            entries.withLock { $0[id] = (value, .now) }
            return value
        }
        guard let cached, now - cached.at < stale else { return try await refresh() }
        Task { _ = try? await refresh() }
        return cached.value
    }
}

/// Concurrent loads of the same key share one query: a thousand clients
/// polling one campaign cost one PostgreSQL round trip at a time, not a
/// thousand queued on the pool. Only loads already in flight are shared
/// (nothing is cached), and `forget` makes the next caller start afresh, so
/// a caller that has just changed the row reads its own write.
final class SingleFlight<Value: Sendable>: Sendable {
    private let inFlight = Mutex<[String: (generation: Int, task: Task<Value, any Error>)]>([:])
    private let generations = Mutex<[String: Int]>([:])

    func run(_ key: String, _ load: @escaping @Sendable () async throws -> Value) async throws -> Value {
        let generation = generations.withLock { $0[key] ?? 0 }
        let task = inFlight.withLock { all -> Task<Value, any Error> in
            if let running = all[key], running.generation == generation { return running.task }
            let task = Task { [weak self] in
                defer { self?.finished(key, generation) }
                return try await load()
            }
            all[key] = (generation, task)
            return task
        }
        return try await task.value
    }

    /// Loads that start after this call do not join one started before it.
    func forget(_ key: String) {
        generations.withLock { all in
            all[key, default: 0] += 1
            if all.count > 10_000 { all.removeAll() }
        }
    }

    private func finished(_ key: String, _ generation: Int) {
        inFlight.withLock { all in
            if all[key]?.generation == generation { all[key] = nil }
        }
    }
}
