import Dispatch
import Logging
import ReachCore
import ReachKafka
import ReachPostgres
import ReachRedis
import ServiceLifecycle
import Synchronization

/// Whether Kafka, PostgreSQL and Redis answer, probed for real in the
/// background (a Service) and kept, so `/readyz` answers at once from what is
/// kept instead of waiting on a fresh round trip: a hung server (SIGSTOP) must
/// not make the probe itself slower than a Kubernetes probe's 1 s timeout.
///
/// A dependency is up when its last probe succeeded and no probe of it has
/// been waiting for longer than `stallAfter`. The world sees only each
/// dependency's name and up or down; the error (host names, users) goes to the
/// log, once per change, with connection secrets masked.
public final class Readiness: Service, Sendable {
    public struct Report: Sendable, Equatable {
        public var checks: [(name: String, up: Bool)]
        public var ready: Bool { checks.allSatisfy(\.up) }

        public static func == (a: Report, b: Report) -> Bool {
            a.checks.map(\.name) == b.checks.map(\.name) && a.checks.map(\.up) == b.checks.map(\.up)
        }
    }

    /// What is kept of one dependency.
    struct Probe {
        var lastOK = false
        var lastError: String? = "not probed yet"
        /// Whether a probe has answered yet: before that nothing is logged (start-up is not an outage).
        var probed = false
        var inFlightSince: ContinuousClock.Instant?
        /// What was last logged, so a change is logged once.
        var reportedUp: Bool?
    }

    static let dependencies = ["kafka", "postgres", "redis"]

    let infrastructure: Infrastructure
    let metrics: ReachMetrics?
    let logger: Logger
    let interval: Duration
    let stallAfter: Duration
    let timeout: Duration
    private let probes = Mutex<[String: Probe]>(Dictionary(uniqueKeysWithValues: dependencies.map { ($0, Probe()) }))

    public init(infrastructure: Infrastructure, metrics: ReachMetrics?, logger: Logger = Logger(label: "reach.readiness"),
                interval: Duration = .milliseconds(500), stallAfter: Duration = .milliseconds(1500), timeout: Duration = .seconds(2)) {
        self.infrastructure = infrastructure
        self.metrics = metrics
        self.logger = logger
        self.interval = interval
        self.stallAfter = stallAfter
        self.timeout = timeout
    }

    /// The kept state, now. Never waits on a dependency.
    public func report(now: ContinuousClock.Instant = .now) -> Report {
        probes.withLock { probes in
            Report(checks: Self.dependencies.map { name in
                let p = probes[name] ?? Probe()
                return (name, Self.isUp(p, now: now, stallAfter: stallAfter))
            })
        }
    }

    static func isUp(_ p: Probe, now: ContinuousClock.Instant, stallAfter: Duration) -> Bool {
        guard p.lastOK else { return false }
        if let since = p.inFlightSince, now - since > stallAfter { return false }
        return true
    }

    /// Probes every dependency once and waits for the answers (start-up, tests).
    public func probeAll() async {
        await withTaskGroup(of: Void.self) { group in
            for name in Self.dependencies { group.addTask { await self.probe(name) } }
        }
    }

    public func run() async throws {
        // Each dependency on its own task: one that hangs does not hold up the others' probes.
        await withTaskGroup(of: Void.self) { group in
            for name in Self.dependencies {
                group.addTask {
                    while !Task.isShuttingDownGracefully && !Task.isCancelled {
                        await self.probe(name)
                        self.publish()
                        try? await Task.sleep(for: self.interval)
                    }
                }
            }
            group.addTask {
                // While a probe hangs, its task waits on it: this one notices the stall and publishes it.
                while !Task.isShuttingDownGracefully && !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(200))
                    self.publish()
                }
            }
        }
    }

    func probe(_ name: String) async {
        probes.withLock { $0[name]?.inFlightSince = .now }
        let failure: String?
        do {
            switch name {
            case "kafka":
                let producer = infrastructure.producer
                let timeout = self.timeout
                try await Self.offPool { try producer.checkConnectivity(timeout: timeout) }
            case "postgres": try await infrastructure.postgres.ping()
            default: try await infrastructure.redis.ping()
            }
            failure = nil
        } catch {
            failure = Redaction.maskConnectionSecrets("\(error)")
        }
        probes.withLock {
            $0[name]?.inFlightSince = nil
            $0[name]?.probed = true
            $0[name]?.lastOK = failure == nil
            $0[name]?.lastError = failure
        }
    }

    /// Sets `reach_dependency_up` and logs each change of a dependency's state once.
    func publish() {
        let now = ContinuousClock.now
        let changes: [(String, Bool, String?)] = probes.withLock { probes in
            var changes: [(String, Bool, String?)] = []
            for name in Self.dependencies {
                guard var p = probes[name] else { continue }
                let up = Self.isUp(p, now: now, stallAfter: stallAfter)
                metrics?.dependencyUp(name, up)
                if p.reportedUp != up, p.probed || up {
                    let stalled = p.lastOK && !up
                    changes.append((name, up, stalled ? "no answer for more than \(stallAfter)" : p.lastError))
                    p.reportedUp = up
                    probes[name] = p
                }
            }
            return changes
        }
        for (name, up, error) in changes {
            if up {
                logger.notice("dependency up", metadata: ["dependency": "\(name)"])
            } else {
                logger.warning("dependency down", metadata: ["dependency": "\(name)", "error": "\(error ?? "unknown")"])
            }
        }
    }

    /// Runs a blocking call on a Dispatch thread instead of the cooperative pool.
    static func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try body() }) }
        }
    }
}
