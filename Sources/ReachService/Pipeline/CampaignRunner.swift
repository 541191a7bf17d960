import Foundation
import Logging
import ReachChannels
import ReachCore
import ReachPostgres
import ReachRedis
import ServiceLifecycle
import Synchronization

/// Runs due campaigns: claims one through its lease, streams its segment in
/// keyset pages, and per page decides, claims idempotency keys, sends through
/// the channels and records every outcome plus the checkpoint in one
/// transaction. A runner that dies leaves its lease to expire; any instance
/// then resumes from the checkpoint.
public final class CampaignRunner: Service, Sendable {
    let infrastructure: Infrastructure
    let registry: ChannelRegistry
    let metrics: PipelineMetrics
    let logger: Logger
    let wake: WakeSignal
    public let owner: String
    private let active = Mutex<Set<String>>([])
    private let settings: PipelineSettings
    private let parser: TaskParser
    private let campaigns: CampaignStore
    private let deliveries: DeliveryStore
    private let segments: SegmentSource
    private let dispatcher: Dispatcher

    public init(infrastructure: Infrastructure, registry: ChannelRegistry, breakers: ChannelBreakers, metrics: PipelineMetrics, logger: Logger, wake: WakeSignal) {
        self.infrastructure = infrastructure
        self.registry = registry
        self.metrics = metrics
        self.logger = logger
        self.wake = wake
        let configuration = infrastructure.configuration
        self.settings = configuration.pipeline
        self.owner = "\(ProcessInfo.processInfo.hostName)/\(getpid())/\(UInt32.random(in: 0...UInt32.max))"
        self.parser = TaskParser(channels: Set(configuration.channels.keys))
        self.campaigns = CampaignStore(client: infrastructure.postgres)
        self.deliveries = DeliveryStore(client: infrastructure.postgres)
        self.segments = SegmentSource(client: infrastructure.postgres)
        self.dispatcher = Dispatcher(infrastructure: infrastructure, registry: registry, breakers: breakers, metrics: metrics, logger: logger, owner: owner)
    }

    var lease: Duration { .milliseconds(settings.leaseMs) }

    public func run() async throws {
        await withDiscardingTaskGroup { group in
            while !Task.isShuttingDownGracefully && !Task.isCancelled {
                let free = settings.maxCampaigns - active.withLock { $0.count }
                if free > 0 {
                    do {
                        for id in try await campaigns.claimable(limit: free * 2) {
                            guard active.withLock({ $0.count < settings.maxCampaigns && $0.insert(id).inserted }) else { continue }
                            group.addTask {
                                await self.runCampaign(id)
                                _ = self.active.withLock { $0.remove(id) }
                                self.wake.signal()
                            }
                        }
                    } catch {
                        logger.warning("cannot look for due campaigns", metadata: ["error": "\(error)"])
                    }
                }
                await wake.wait(timeout: .milliseconds(settings.pollIntervalMs))
            }
        }
    }

    enum Mode {
        case send
        case skip(reason: String)
    }

    func runCampaign(_ id: String) async {
        var attempt = 0
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                try await runClaimed(id)
                return
            } catch let failure as CampaignFailure {
                logger.error("campaign failed", metadata: ["campaign": "\(id)", "error": "\(failure.message)"])
                try? await campaigns.finish(id, owner: owner, state: "failed", error: failure.message)
                return
            } catch {
                attempt += 1
                logger.warning("campaign interrupted; will resume from its checkpoint",
                               metadata: ["campaign": "\(id)", "error": "\(error)", "attempt": "\(attempt)"])
                try? await Task.sleep(for: Backoff(base: .milliseconds(200), max: .seconds(5)).delay(afterAttempt: attempt))
            }
        }
        try? await campaigns.release(id, owner: owner)
    }

    struct CampaignFailure: Error {
        let message: String
    }

    func runClaimed(_ id: String) async throws {
        guard let claim = try await campaigns.claim(id, owner: owner, lease: lease) else { return }
        let task: CampaignTask
        let planner: DeliveryPlanner
        let segment: SegmentSource.Resolved
        do {
            guard case .campaign(let parsed) = try parser.parse(Array(claim.specJSON.utf8)) else {
                throw CampaignFailure(message: "stored spec is not a campaign")
            }
            task = parsed
            planner = try DeliveryPlanner(task: task, addressFields: registry.addressFields)
            segment = try await segments.resolve(task.segment)
        } catch let error as ValidationError {
            throw CampaignFailure(message: error.description)
        } catch let error as SegmentSource.NotFound {
            throw CampaignFailure(message: error.description)
        }
        let acceptedAt = Date(timeIntervalSince1970: claim.createdAt)
        var checkpoint = claim.checkpoint
        let started = ContinuousClock.now
        logger.info("campaign running", metadata: ["campaign": "\(id)", "checkpoint": "\(checkpoint ?? "-")"])
        // Pages overlap: while up to `pagesInFlight` pages are being decided and
        // sent, the next one is read. Each page's rows and checkpoint are written
        // only after the previous page's, so the checkpoint never passes a user
        // without a row, and a failure stops every later page before it writes.
        var window = PageWindow()
        do {
            while true {
                if Task.isShuttingDownGracefully || Task.isCancelled {
                    try await window.drain()
                    try await campaigns.release(id, owner: owner)
                    logger.info("campaign handed back for shutdown", metadata: ["campaign": "\(id)", "checkpoint": "\(checkpoint ?? "-")"])
                    return
                }
                guard let state = try await campaigns.heartbeat(id, owner: owner, lease: lease) else {
                    await window.cancel()
                    logger.warning("campaign lease lost to another runner", metadata: ["campaign": "\(id)"])
                    return
                }
                if state == "paused" {
                    try await window.drain()
                    try await campaigns.release(id, owner: owner)
                    logger.info("campaign paused", metadata: ["campaign": "\(id)", "checkpoint": "\(checkpoint ?? "-")"])
                    return
                }
                let mode: Mode = if state == "cancelled" {
                    .skip(reason: "cancelled")
                } else if let expiresAt = task.expiresAt, Date() >= expiresAt {
                    .skip(reason: "expired")
                } else {
                    .send
                }
                let page = try await segments.page(segment, after: checkpoint, limit: settings.pageSize)
                guard let last = page.last else {
                    try await window.drain()
                    // Every user has a row; the campaign ends when no retry is pending.
                    if try await deliveries.pendingRetries(campaignID: id) > 0 {
                        try await Task.sleep(for: .milliseconds(250))
                        continue
                    }
                    let final = state == "cancelled" ? "cancelled" : "done"
                    try await campaigns.finish(id, owner: owner, state: final)
                    let seconds = (ContinuousClock.now - started).seconds
                    logger.info("campaign finished", metadata: [
                        "campaign": "\(id)", "state": "\(final)", "recipients_this_run": "\(window.processed)",
                        "seconds": "\(String(format: "%.2f", seconds))",
                    ])
                    return
                }
                let previous = window.last
                try await window.add(Task {
                    let (rows, deadLetters) = try await self.process(page, task: task, planner: planner, mode: mode, acceptedAt: acceptedAt)
                    if let previous { _ = try await previous.value }
                    try await self.deliveries.record(campaignID: id, rows: rows, checkpoint: last.userID, deadLetters: deadLetters)
                    return page.count
                }, limit: settings.pagesInFlight)
                checkpoint = last.userID
            }
        } catch {
            await window.cancel()
            throw error
        }
    }

    /// The pages of one campaign in flight, oldest first.
    struct PageWindow {
        private var tasks: [Task<Int, any Error>] = []
        private(set) var processed = 0

        var last: Task<Int, any Error>? { tasks.last }

        /// Adds a page; waits for the oldest to be written when `limit` are in flight.
        mutating func add(_ task: Task<Int, any Error>, limit: Int) async throws {
            tasks.append(task)
            while tasks.count >= limit {
                processed += try await tasks.removeFirst().value
            }
        }

        /// Waits until every page in flight is written.
        mutating func drain() async throws {
            while !tasks.isEmpty { processed += try await tasks.removeFirst().value }
        }

        /// Stops the pages in flight and waits for them to end, so nothing of this
        /// run is still working once the runner lets go of the campaign. (A page
        /// never writes before the one ahead of it, so a failed page stops the rest.)
        mutating func cancel() async {
            for t in tasks { t.cancel() }
            for t in tasks { _ = try? await t.value }
            tasks = []
        }
    }

    /// Decides, claims, sends and returns the delivery rows for one page.
    func process(_ page: [Recipient], task: CampaignTask, planner: DeliveryPlanner, mode: Mode,
                 acceptedAt: Date) async throws -> (rows: [DeliveryStore.Row], deadLetters: [DeliveryStore.DeadLetter]) {
        let id = task.campaignID
        let done = try await deliveries.existing(campaignID: id, userIDs: page.map(\.userID))
        let todo = page.filter { done[$0.userID] == nil }
        var rows: [DeliveryStore.Row] = []
        rows.reserveCapacity(todo.count)
        if case .skip(let reason) = mode {
            for r in todo {
                rows.append(.init(userID: r.userID, channel: nil, status: "skipped", reason: reason, attempts: 0,
                                  messageID: MessageID.make(campaignID: id, userID: r.userID)))
            }
            metrics.message(channel: "none", status: "skipped", count: rows.count)
            return (rows, [])
        }
        var outbound: [Dispatcher.Attempt] = []
        var skippedByChannel: [String: Int] = [:]
        defer { for (channel, n) in skippedByChannel { metrics.message(channel: channel, status: "skipped", count: n) } }
        for r in todo {
            switch planner.plan(r) {
            case .skip(let reason, let channel):
                rows.append(.init(userID: r.userID, channel: channel, status: "skipped", reason: reason, attempts: 0,
                                  messageID: MessageID.make(campaignID: id, userID: r.userID)))
                skippedByChannel[channel ?? "none", default: 0] += 1
            case .send(let message):
                outbound.append(.init(message: message, number: 1, timezone: r.timezone, quietHours: task.quietHours))
            }
        }
        let result = try await dispatcher.deliver(outbound, acceptedAt: acceptedAt)
        return (rows + result.rows, result.deadLetters)
    }
}
