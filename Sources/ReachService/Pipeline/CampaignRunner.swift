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
///
/// A big campaign is cut into shards at its first claim (`ShardPlan`,
/// `pipeline.shards` and `pipeline.shard_min_recipients`): ranges of user
/// ids, each with a lease, checkpoint and counters of its own, which any
/// instance claims (`CampaignShardStore.claimFree`) and runs with the same
/// page loop. When the last shard is done, the campaign's own row is claimed
/// once more to end it (queued retries waited for, counters recounted).
public final class CampaignRunner: Service, Sendable {
    let infrastructure: Infrastructure
    let registry: ChannelRegistry
    let metrics: PipelineMetrics
    let logger: Logger
    let wake: WakeSignal
    public let owner: String
    /// Runs of this instance: campaign ids, and `<campaign>#<shard>` for shards.
    private let active = Mutex<Set<String>>([])
    private let settings: PipelineSettings
    private let parser: TaskParser
    private let campaigns: CampaignStore
    private let shards: CampaignShardStore
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
        self.shards = CampaignShardStore(client: infrastructure.postgres)
        self.deliveries = DeliveryStore(client: infrastructure.postgres)
        self.segments = SegmentSource(client: infrastructure.postgres)
        self.pipeline = pipeline
        self.recurring = RecurringCampaigns(infrastructure: infrastructure, logger: logger, wake: wake.signal)
    }

    var lease: Duration { .milliseconds(settings.leaseMs) }

    static func key(_ campaignID: String, shard: Int) -> String { "\(campaignID)#\(shard)" }

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
                func free() -> Int { settings.maxCampaigns - active.withLock { $0.count } }
                guard free() > 0 else { continue }
                do {
                    for id in try await campaigns.claimable(limit: free() * 2) {
                        guard active.withLock({ $0.count < settings.maxCampaigns && $0.insert(id).inserted }) else { continue }
                        group.addTask {
                            await self.runCampaign(id)
                            _ = self.active.withLock { $0.remove(id) }
                            self.wake.signal()
                        }
                    }
                    guard free() > 0 else { continue }
                    let running = active.withLock { Array($0) }
                    for claim in try await shards.claimFree(owner: owner, lease: lease, limit: free(), excluding: running) {
                        let key = Self.key(claim.campaignID, shard: claim.range.index)
                        active.withLock { _ = $0.insert(key) }
                        group.addTask {
                            await self.runShard(claim)
                            _ = self.active.withLock { $0.remove(key) }
                            self.wake.signal()
                        }
                    }
                } catch {
                    logger.warning("cannot look for due campaigns", metadata: ["error": "\(error)"])
                }
            }
        }
    }

    /// Errors of one campaign in a row that are not PostgreSQL or Redis being
    /// away; after this many the campaign is `failed` with the last one.
    static let maxConsecutiveErrors = 8

    func runCampaign(_ id: String) async {
        await keepRunning(id, shard: nil) {
            try await self.runClaimed(id)
        } giveUp: { message in
            if let claim = try? await self.campaigns.claim(id, owner: self.owner, lease: self.lease) {
                await self.fail(id, fence: claim.fence, message)
            }
        }
    }

    /// Runs a claimed shard; when it was the campaign's last open one, ends the campaign too.
    func runShard(_ first: CampaignShardStore.Claim) async {
        let id = first.campaignID
        let index = first.range.index
        var claim: CampaignShardStore.Claim? = first
        var last = false
        await keepRunning(id, shard: index) {
            let current: CampaignShardStore.Claim?
            if let claim { current = claim } else { current = try await self.shards.claim(id, shard: index, owner: self.owner, lease: self.lease) }
            claim = nil
            guard let current else { return }
            last = try await self.runShardClaimed(current)
        } giveUp: { message in
            await self.fail(id, fence: Fence(owner: self.owner, epoch: 0, shard: index), message)
        }
        if last { await runCampaign(id) }
    }

    /// Runs `body` until it returns or is fenced out, again after errors: as
    /// long as they are outages (PostgreSQL or Redis away), else up to
    /// `maxConsecutiveErrors` in a row, then `giveUp`.
    func keepRunning(_ id: String, shard: Int?, _ body: () async throws -> Void, giveUp: (String) async -> Void) async {
        var attempt = 0
        var persistent = 0
        let what: Logger.Metadata = shard.map { ["campaign": "\(id)", "shard": "\($0)"] } ?? ["campaign": "\(id)"]
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                try await body()
                return
            } catch let failure as CampaignFailure {
                await fail(id, fence: failure.fence, failure.message)
                return
            } catch let fenced as FencedOut {
                logger.warning("campaign handed over", metadata: what.merging(["error": "\(fenced)"]) { a, _ in a })
                return
            } catch {
                attempt += 1
                if Self.isOutage(error) { persistent = 0 } else { persistent += 1 }
                logger.warning("campaign interrupted; will resume from its checkpoint",
                               metadata: what.merging(["error": "\(error)", "attempt": "\(attempt)"]) { a, _ in a })
                if persistent >= Self.maxConsecutiveErrors {
                    // Not an outage that will pass: the campaign itself cannot run (its
                    // segment's SQL fails on the data, say). It ends visibly, and frees its slot.
                    await giveUp("gave up after \(persistent) errors in a row: \(error)")
                    return
                }
                try? await Task.sleep(for: Backoff(base: .milliseconds(200), max: .seconds(5)).delay(afterAttempt: attempt))
            }
        }
    }

    /// Ends the campaign `failed`: through its own lease, or — from a shard,
    /// which holds only its part — unowned (every other shard's run sees the
    /// state at its next renewal and hands its part back).
    func fail(_ id: String, fence: Fence, _ message: String) async {
        logger.error("campaign failed", metadata: ["campaign": "\(id)", "error": "\(message)"])
        _ = try? await persist(logger, "campaign failure") {
            if fence.shard != nil {
                try await campaigns.failUnowned(id, error: message)
            } else {
                try await campaigns.finish(id, fence: fence, state: CampaignState.failed.rawValue, error: message)
            }
            // Its users without a terminal row stay as they are; retries still queued are dropped when they fire.
        }
    }

    /// A dependency being away (or slow), which passes: the campaign waits for it.
    static func isOutage(_ error: any Error) -> Bool {
        if let pg = error as? PostgresError { return pg.isRetryable }
        // Any Redis error reply may pass (LOADING, BUSY, OOM, a failover); only a
        // command the cluster client refused to send (keys across slots) never will.
        if let redis = error as? RedisError { return redis.code != .refused }
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

    /// What one lease covers: the whole campaign, or one shard of it.
    struct Scope: Sendable {
        var campaignID: String
        var fence: Fence
        /// nil: the whole segment (the campaign's own lease and checkpoint).
        var range: ShardRange?
        var checkpoint: String?
        var takenOver: Bool
        var acceptedAt: Date
        var spread: KeySpread
    }

    /// The stored task of a claim, parsed, with its planner and segment.
    func prepare(_ specJSON: String, fence: Fence) async throws -> (CampaignTask, DeliveryPlanner, SegmentSource.Resolved) {
        do {
            guard case .campaign(let task) = try parser.parse(Array(specJSON.utf8)) else {
                throw CampaignFailure(fence: fence, message: "stored spec is not a campaign")
            }
            return (task, try DeliveryPlanner(task: task, addressFields: registry.addressFields), try await segments.resolve(task.segment))
        } catch let error as ValidationError {
            throw CampaignFailure(fence: fence, message: error.description)
        } catch let error as SegmentSource.NotFound {
            throw CampaignFailure(fence: fence, message: error.description)
        }
    }

    func runClaimed(_ id: String) async throws {
        let claimedAt = ContinuousClock.now
        guard let claim = try await campaigns.claim(id, owner: owner, lease: lease) else { return }
        let fence = claim.fence
        let (task, planner, segment) = try await prepare(claim.specJSON, fence: fence)
        let lease = CampaignLease(campaignID: id, fence: fence, duration: self.lease, claimedAt: claimedAt, expiresAt: task.expiresAt,
                                  logger: logger) { [campaigns] in try await campaigns.heartbeat(id, fence: fence, lease: $0) }
        let keeper = Task { await lease.keep() }
        defer { keeper.cancel() }
        let scope = Scope(campaignID: id, fence: fence, range: nil, checkpoint: claim.checkpoint, takenOver: claim.takenOver,
                          acceptedAt: Date(timeIntervalSince1970: claim.createdAt), spread: .campaign(shards: claim.shards))
        try await withGracefulShutdownHandler {
            if claim.shards > 0 {
                // Every shard is done (or the claim would not be given): end the campaign.
                try await end(scope, lease: lease, everyUserHasRow: true, started: .now, processed: 0)
                return
            }
            // A campaign is cut only at its first claim: nothing was sent under its own key scope yet.
            if fence.epoch == 1, settings.shards > 1, CampaignStep.next(lease.verdict(), takenOver: false) == .send {
                let cut = try await segments.cut(segment, maxShards: settings.shards, minimumPerShard: settings.shardMinRecipients)
                if cut.ranges.count > 1 {
                    guard try await shards.split(id, fence: fence, ranges: cut.ranges, planned: cut.count) else {
                        throw FencedOut("campaign cut", fence: fence)
                    }
                    logger.info("campaign cut into shards", metadata: ["campaign": "\(id)", "shards": "\(cut.ranges.count)",
                                                                      "recipients": "\(cut.count)"])
                    wake.signal()
                    return
                }
            }
            _ = try await run(scope, task: task, planner: planner, segment: segment, lease: lease)
        } onGracefulShutdown: {
            lease.stop()
        }
    }

    /// Runs a claimed shard; true when it was the campaign's last open shard.
    func runShardClaimed(_ claim: CampaignShardStore.Claim) async throws -> Bool {
        let claimedAt = ContinuousClock.now
        let id = claim.campaignID
        let fence = claim.fence
        let (task, planner, segment) = try await prepare(claim.specJSON, fence: fence)
        let lease = CampaignLease(campaignID: id, fence: fence, duration: self.lease, claimedAt: claimedAt, expiresAt: task.expiresAt,
                                  logger: logger) { [shards] in try await shards.heartbeat(id, fence: fence, lease: $0) }
        let keeper = Task { await lease.keep() }
        defer { keeper.cancel() }
        let scope = Scope(campaignID: id, fence: fence, range: claim.range, checkpoint: claim.checkpoint ?? claim.range.lower,
                          takenOver: claim.takenOver, acceptedAt: Date(timeIntervalSince1970: claim.createdAt),
                          spread: .campaign(shards: claim.shards))
        return try await withGracefulShutdownHandler {
            try await run(scope, task: task, planner: planner, segment: segment, lease: lease)
        } onGracefulShutdown: {
            lease.stop()
        }
    }

    /// Gives the lease back (paused, or this instance is stopping).
    func release(_ scope: Scope) async throws {
        if scope.range != nil {
            try await shards.release(scope.campaignID, fence: scope.fence)
        } else {
            try await campaigns.release(scope.campaignID, fence: scope.fence)
        }
    }

    /// The page loop of one claimed run (the whole campaign, or one shard);
    /// true when a shard's run found its campaign's last shard done.
    func run(_ scope: Scope, task: CampaignTask, planner: DeliveryPlanner, segment: SegmentSource.Resolved,
             lease: CampaignLease) async throws -> Bool {
        let id = scope.campaignID
        let fence = scope.fence
        let started = ContinuousClock.now
        let part: Logger.Metadata = scope.range.map { ["campaign": "\(id)", "shard": "\($0.index)"] } ?? ["campaign": "\(id)"]
        if scope.takenOver {
            // The last holder did not hand the campaign back: a request it started
            // just before its lease ran out may still be answered. Wait that out.
            let grace = registry.longestTimeout
            logger.info("campaign taken over; waiting out the last holder's requests",
                        metadata: part.merging(["seconds": "\(grace.seconds)"]) { a, _ in a })
            try await Task.sleep(for: grace)
        }
        logger.info("campaign running", metadata: part.merging(["checkpoint": "\(scope.checkpoint ?? "-")", "epoch": "\(fence.epoch)"]) { a, _ in a })
        // Pages overlap: while up to `pagesInFlight` pages are being decided and
        // sent, the next one is read. Each page's rows and checkpoint are written
        // only after the previous page's, and the checkpoint moves only past
        // pages whose every user got a row; a page the gate held back (pause, a
        // lapsed lease, shutdown) is read again from the checkpoint.
        var window = PageWindow()
        // A segment of most recipients is read by range (SegmentSource.isDense): asked once per run.
        let dense = try await segments.isDense(segment)
        var checkpoint = scope.checkpoint
        var durable = scope.checkpoint
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
                try await release(scope)
                logger.info(hold == .paused ? "campaign paused" : hold == .ended ? "campaign ended elsewhere" : "campaign handed back for shutdown",
                            metadata: part.merging(["checkpoint": "\(durable ?? "-")"]) { a, _ in a })
                return false
            }
            let page = try await segments.page(segment, after: checkpoint, upTo: scope.range?.upper, limit: settings.pageSize, dense: dense)
            guard let last = page.last else {
                let complete = try await drain()
                guard scope.range != nil else {
                    if try await end(scope, lease: lease, everyUserHasRow: complete, started: started, processed: window.processed) {
                        return false
                    }
                    checkpoint = durable
                    continue
                }
                // A shard waits for no retries: the campaign's end does.
                switch CampaignEnding.decide(everyUserHasRow: complete, pendingRetries: 0, state: CampaignState(rawValue: lease.state)) {
                case .readAgain, .awaitRetries:
                    checkpoint = durable
                    continue
                case .finish:
                    guard let open = try await shards.finish(id, fence: fence) else { throw FencedOut("shard finish", fence: fence) }
                    logger.info("campaign shard done", metadata: part.merging([
                        "recipients_this_run": "\(window.processed)", "open_shards": "\(open)",
                        "seconds": "\(String(format: "%.2f", (ContinuousClock.now - started).seconds))",
                    ]) { a, _ in a })
                    return open == 0
                }
            }
            let previous = window.last
            let done = try await window.add(Task {
                try await self.deliver(page, task: task, planner: planner, scope: scope, lease: lease, after: previous)
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

    /// The end of a campaign's own run (whole, or after its last shard): true
    /// when it finished; false when some users have no row yet (read again).
    /// Waits while retries of it are queued.
    func end(_ scope: Scope, lease: CampaignLease, everyUserHasRow: Bool, started: ContinuousClock.Instant, processed: Int) async throws -> Bool {
        let id = scope.campaignID
        while true {
            let pending = everyUserHasRow ? try await deliveries.pendingRetries(campaignID: id) : 0
            switch CampaignEnding.decide(everyUserHasRow: everyUserHasRow, pendingRetries: pending, state: CampaignState(rawValue: lease.state)) {
            case .readAgain:
                return false
            case .awaitRetries:
                if case .stop = CampaignStep.next(lease.verdict(), takenOver: lease.isLost) { throw FencedOut("campaign end", fence: scope.fence) }
                if case .handBack = CampaignStep.next(lease.verdict(), takenOver: lease.isLost) {
                    try await release(scope)
                    return true
                }
                try await Task.sleep(for: .milliseconds(250))
            case .finish(let final):
                guard try await campaigns.finish(id, fence: scope.fence, state: final.rawValue) else {
                    throw FencedOut("campaign finish", fence: scope.fence)
                }
                logger.info("campaign finished", metadata: [
                    "campaign": "\(id)", "state": "\(final.rawValue)", "recipients_this_run": "\(processed)",
                    "seconds": "\(String(format: "%.2f", (ContinuousClock.now - started).seconds))",
                ])
                return true
            }
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
    func deliver(_ page: [Recipient], task: CampaignTask, planner: DeliveryPlanner, scope: Scope, lease: CampaignLease,
                 after previous: Task<PageDone, any Error>?) async throws -> PageDone {
        let id = task.campaignID
        let gate = lease.gate
        let plan = DeliveryPipeline.Plan(kind: .task, acceptedAt: scope.acceptedAt, gate: gate, fence: lease.fence, spread: scope.spread)
        // The rows are of users who had none when the page was read: new, except
        // where another holder wrote one since (the store then upserts).
        func write(_ outcome: DeliveryPipeline.Outcome) async throws -> PageDone {
            let complete = try await previous?.value.chainComplete ?? true
            let chainComplete = complete && outcome.complete
            try await deliveries.record(campaignID: id, rows: outcome.rows, checkpoint: chainComplete ? page.last?.userID : nil,
                                        deadLetters: outcome.deadLetters.map(\.letter), fence: lease.fence, rowsAreNew: true)
            return PageDone(count: page.count, chainComplete: chainComplete)
        }
        // Held back (other than for good: cancel and expiry still write rows) means: stop trying.
        let held = { if case .hold(let hold) = gate.check() { hold.skipReason == nil } else { false } }
        let written = try await retrying(logger, "page \(id) before sending", stop: held) {
            let done = try await deliveries.existing(campaignID: id, userIDs: page.map(\.userID))
            // A page read for the first time has no rows yet: no lookup per user then.
            let sends = page.compactMap {
                done.isEmpty || done[$0.userID] == nil ? DeliveryPipeline.Send(recipient: $0, planner: planner, quietHours: task.quietHours) : nil
            }
            return try await pipeline.deliver(sends, plan, record: write)
        }
        if let written { return written }
        return try await persist(logger, "page rows") { try await write(DeliveryPipeline.Outcome(complete: false)) }
    }
}
