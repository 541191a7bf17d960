import Foundation
import Logging
import ReachChannels
import ReachCore
import ReachPostgres
import ReachRedis
import ServiceLifecycle
import Synchronization

/// Runs due campaigns: claims one through its lease, streams its segment in
/// keyset pages, and hands each page's users without a row to the delivery
/// pipeline, which records their rows plus the page's checkpoint in one
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
    private let pipeline: DeliveryPipeline
    private let recurring: RecurringCampaigns

    init(infrastructure: Infrastructure, registry: ChannelRegistry, pipeline: DeliveryPipeline, metrics: PipelineMetrics,
         logger: Logger, wake: WakeSignal) {
        self.infrastructure = infrastructure
        self.registry = registry
        self.metrics = metrics
        self.logger = logger
        self.wake = wake
        let configuration = infrastructure.configuration
        self.settings = configuration.pipeline
        self.owner = pipeline.owner
        // The runs of recurring campaigns have run ids (`<id>@<time>`).
        self.parser = TaskParser(channels: Set(configuration.channels.keys), acceptsRunIDs: true)
        self.campaigns = CampaignStore(client: infrastructure.postgres)
        self.deliveries = DeliveryStore(client: infrastructure.postgres)
        self.segments = SegmentSource(client: infrastructure.postgres)
        self.pipeline = pipeline
        self.recurring = RecurringCampaigns(infrastructure: infrastructure, logger: logger, wake: wake.signal)
    }

    var lease: Duration { .milliseconds(settings.leaseMs) }

    public func run() async throws {
        await withDiscardingTaskGroup { group in
            var lastSeriesCheck: ContinuousClock.Instant?
            for await _ in wake.passes(every: .milliseconds(settings.pollIntervalMs)).cancelOnGracefulShutdown() {
                if lastSeriesCheck.map({ ContinuousClock.now - $0 >= .seconds(1) }) ?? true {
                    // Recurring campaigns whose run is overdue lost their queue item: fire them from here.
                    do {
                        try await recurring.fireOverdue()
                    } catch {
                        logger.warning("cannot look for overdue recurring campaigns", metadata: ["error": "\(error)"])
                    }
                    lastSeriesCheck = ContinuousClock.now
                }
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
            }
        }
    }

    /// Errors of one campaign in a row that are not PostgreSQL or Redis being
    /// away; after this many the campaign is `failed` with the last one.
    static let maxConsecutiveErrors = 8

    func runCampaign(_ id: String) async {
        var attempt = 0
        var persistent = 0
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                try await runClaimed(id)
                return
            } catch let failure as CampaignFailure {
                await fail(id, fence: failure.fence, failure.message)
                return
            } catch let fenced as FencedOut {
                logger.warning("campaign handed over", metadata: ["campaign": "\(id)", "error": "\(fenced)"])
                return
            } catch {
                attempt += 1
                if Self.isOutage(error) { persistent = 0 } else { persistent += 1 }
                logger.warning("campaign interrupted; will resume from its checkpoint",
                               metadata: ["campaign": "\(id)", "error": "\(error)", "attempt": "\(attempt)"])
                if persistent >= Self.maxConsecutiveErrors {
                    // Not an outage that will pass: the campaign itself cannot run (its
                    // segment's SQL fails on the data, say). It ends visibly, and frees its slot.
                    if let claim = try? await campaigns.claim(id, owner: owner, lease: lease) {
                        await fail(id, fence: claim.fence, "gave up after \(persistent) errors in a row: \(error)")
                    }
                    return
                }
                try? await Task.sleep(for: Backoff(base: .milliseconds(200), max: .seconds(5)).delay(afterAttempt: attempt))
            }
        }
    }

    func fail(_ id: String, fence: Fence, _ message: String) async {
        logger.error("campaign failed", metadata: ["campaign": "\(id)", "error": "\(message)"])
        _ = try? await persist(logger, "campaign failure") {
            try await campaigns.finish(id, fence: fence, state: CampaignState.failed.rawValue, error: message)
            // Its users without a terminal row stay as they are; retries still queued are dropped when they fire.
        }
    }

    /// A dependency being away (or slow), which passes: the campaign waits for it.
    static func isOutage(_ error: any Error) -> Bool {
        if let pg = error as? PostgresError { return pg.isRetryable }
        if error is RedisError { return true }
        return false
    }

    struct CampaignFailure: Error {
        let fence: Fence
        let message: String
    }

    /// One page's result, handed to the page behind it.
    struct PageDone: Sendable {
        var count: Int
        /// This page and every page before it in this run got a row for each of their users.
        var chainComplete: Bool
    }

    func runClaimed(_ id: String) async throws {
        let claimedAt = ContinuousClock.now
        guard let claim = try await campaigns.claim(id, owner: owner, lease: lease) else { return }
        let fence = claim.fence
        let task: CampaignTask
        let planner: DeliveryPlanner
        let segment: SegmentSource.Resolved
        do {
            guard case .campaign(let parsed) = try parser.parse(Array(claim.specJSON.utf8)) else {
                throw CampaignFailure(fence: fence, message: "stored spec is not a campaign")
            }
            task = parsed
            planner = try DeliveryPlanner(task: task, addressFields: registry.addressFields)
            segment = try await segments.resolve(task.segment)
        } catch let error as ValidationError {
            throw CampaignFailure(fence: fence, message: error.description)
        } catch let error as SegmentSource.NotFound {
            throw CampaignFailure(fence: fence, message: error.description)
        }
        let lease = CampaignLease(campaignID: id, fence: fence, duration: self.lease, claimedAt: claimedAt,
                                  expiresAt: task.expiresAt, store: campaigns, logger: logger)
        let keeper = Task { await lease.keep() }
        defer { keeper.cancel() }
        try await withGracefulShutdownHandler {
            try await run(claim, task: task, planner: planner, segment: segment, lease: lease)
        } onGracefulShutdown: {
            lease.stop()
        }
    }

    /// The page loop of one claimed run.
    func run(_ claim: CampaignStore.Claim, task: CampaignTask, planner: DeliveryPlanner, segment: SegmentSource.Resolved,
             lease: CampaignLease) async throws {
        let id = claim.campaignID
        let fence = claim.fence
        let acceptedAt = Date(timeIntervalSince1970: claim.createdAt)
        let started = ContinuousClock.now
        if claim.takenOver {
            // The last holder did not hand the campaign back: a request it started
            // just before its lease ran out may still be answered. Wait that out.
            let grace = registry.longestTimeout
            logger.info("campaign taken over; waiting out the last holder's requests",
                        metadata: ["campaign": "\(id)", "seconds": "\(grace.seconds)"])
            try await Task.sleep(for: grace)
        }
        logger.info("campaign running", metadata: ["campaign": "\(id)", "checkpoint": "\(claim.checkpoint ?? "-")", "epoch": "\(fence.epoch)"])
        // Pages overlap: while up to `pagesInFlight` pages are being decided and
        // sent, the next one is read. Each page's rows and checkpoint are written
        // only after the previous page's, and the checkpoint moves only past
        // pages whose every user got a row; a page the gate held back (pause, a
        // lapsed lease, shutdown) is read again from the checkpoint.
        var window = PageWindow()
        var checkpoint = claim.checkpoint
        var durable = claim.checkpoint
        /// Waits for the pages in flight; the checkpoint they wrote, if all were complete, is the durable one.
        func drain() async throws -> Bool {
            let finished = try await window.drain()
            if finished.chainComplete, let written = finished.checkpoint { durable = written }
            return finished.chainComplete
        }
        do {
        while true {
            switch CampaignStep.next(lease.verdict(), takenOver: lease.isLost) {
            case .send, .skip:
                break
            case .stop:
                _ = try await drain()
                throw FencedOut("campaign run", fence: fence)
            case .awaitLease:
                // PostgreSQL has not answered a renewal in time; nobody else has the
                // campaign (yet). Wait for the lease to be renewed, then go on
                // from the last page every user of which has a row.
                _ = try await drain()
                try await Task.sleep(for: .milliseconds(100))
                checkpoint = durable
                continue
            case .handBack(let hold):
                _ = try await drain()
                try await campaigns.release(id, fence: fence)
                logger.info(hold == .paused ? "campaign paused" : "campaign handed back for shutdown",
                            metadata: ["campaign": "\(id)", "checkpoint": "\(durable ?? "-")"])
                return
            }
            let page = try await segments.page(segment, after: checkpoint, limit: settings.pageSize)
            guard let last = page.last else {
                let complete = try await drain()
                let pending = complete ? try await deliveries.pendingRetries(campaignID: id) : 0
                switch CampaignEnding.decide(everyUserHasRow: complete, pendingRetries: pending, state: CampaignState(rawValue: lease.state)) {
                case .readAgain:
                    checkpoint = durable
                    continue
                case .awaitRetries:
                    try await Task.sleep(for: .milliseconds(250))
                    continue
                case .finish(let final):
                    guard try await campaigns.finish(id, fence: fence, state: final.rawValue) else {
                        throw FencedOut("campaign finish", fence: fence)
                    }
                    let seconds = (ContinuousClock.now - started).seconds
                    logger.info("campaign finished", metadata: [
                        "campaign": "\(id)", "state": "\(final.rawValue)", "recipients_this_run": "\(window.processed)",
                        "seconds": "\(String(format: "%.2f", seconds))",
                    ])
                    return
                }
            }
            let previous = window.last
            let done = try await window.add(Task {
                try await self.deliver(page, task: task, planner: planner, acceptedAt: acceptedAt, lease: lease, after: previous)
            }, last: last.userID, limit: settings.pagesInFlight)
            checkpoint = last.userID
            if let done {
                if done.chainComplete {
                    durable = done.checkpoint
                } else {
                    // Users of that page are still unsent: let every page in flight
                    // finish and be written, then read again from the checkpoint.
                    _ = try await drain()
                    checkpoint = durable
                }
            }
        }
        } catch {
            _ = try? await window.drain()
            throw error
        }
    }

    /// The pages of one campaign in flight, oldest first. Pages are never
    /// cancelled: a page whose requests are on the wire keeps their answers.
    struct PageWindow {
        private var tasks: [(task: Task<PageDone, any Error>, last: String)] = []
        private(set) var processed = 0

        var last: Task<PageDone, any Error>? { tasks.last?.task }

        struct Finished {
            var chainComplete: Bool
            var checkpoint: String?
        }

        /// Adds a page; when `limit` are in flight, waits for the oldest to be
        /// written and returns what it finished.
        mutating func add(_ task: Task<PageDone, any Error>, last: String, limit: Int) async throws -> Finished? {
            tasks.append((task, last))
            var finished: Finished?
            while tasks.count >= limit {
                let oldest = tasks.removeFirst()
                let done = try await oldest.task.value
                processed += done.count
                finished = Finished(chainComplete: done.chainComplete, checkpoint: oldest.last)
            }
            return finished
        }

        /// Waits until every page in flight is written; says whether all of them were complete.
        mutating func drain() async throws -> Finished {
            var finished = Finished(chainComplete: true, checkpoint: nil)
            var failure: (any Error)?
            while !tasks.isEmpty {
                let oldest = tasks.removeFirst()
                do {
                    let done = try await oldest.task.value
                    processed += done.count
                    finished = Finished(chainComplete: done.chainComplete, checkpoint: oldest.last)
                } catch {
                    // Wait for the rest all the same: nothing of this run may still be
                    // working once the runner lets go of the campaign.
                    failure = failure ?? error
                }
            }
            if let failure { throw failure }
            return finished
        }
    }

    /// One page: its users without a row yet go through the pipeline, and
    /// their rows plus the checkpoint are written after the page before (page
    /// order). The steps before the first request are retried on any error
    /// while the gate allows; a page held back before it sent anything writes
    /// no rows and leaves the checkpoint. Throws only `FencedOut` (or a refused write).
    func deliver(_ page: [Recipient], task: CampaignTask, planner: DeliveryPlanner, acceptedAt: Date, lease: CampaignLease,
                 after previous: Task<PageDone, any Error>?) async throws -> PageDone {
        let id = task.campaignID
        let gate = lease.gate
        let plan = DeliveryPipeline.Plan(kind: .task, acceptedAt: acceptedAt, gate: gate, fence: lease.fence)
        func write(_ outcome: DeliveryPipeline.Outcome) async throws -> PageDone {
            let complete = try await previous?.value.chainComplete ?? true
            let chainComplete = complete && outcome.complete
            try await deliveries.record(campaignID: id, rows: outcome.rows.map(\.row), checkpoint: chainComplete ? page.last?.userID : nil,
                                        deadLetters: outcome.deadLetters.map(\.letter), fence: lease.fence)
            return PageDone(count: page.count, chainComplete: chainComplete)
        }
        // Held back (other than for good: cancel and expiry still write rows) means: stop trying.
        let held = { if case .hold(let hold) = gate.check() { hold.skipReason == nil } else { false } }
        let written = try await retrying(logger, "page \(id) before sending", stop: held) {
            let done = try await deliveries.existing(campaignID: id, userIDs: page.map(\.userID))
            let sends = page.filter { done[$0.userID] == nil }.map {
                DeliveryPipeline.Send(recipient: $0, planner: planner, quietHours: task.quietHours)
            }
            return try await pipeline.deliver(sends, plan, record: write)
        }
        if let written { return written }
        return try await persist(logger, "page rows") { try await write(DeliveryPipeline.Outcome(complete: false)) }
    }
}
