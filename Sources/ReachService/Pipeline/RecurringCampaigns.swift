import Foundation
import Logging
import ReachCore
import ReachPostgres
import ReachRedis

/// Fires the runs of recurring campaigns (SPEC §3.1 `schedule.cron`).
///
/// A series is its own row in `reach.campaigns` (`recurring`, never run
/// itself), `scheduled` with `scheduled_at` = the run it waits for, and one
/// delay-queue item `cron:<id>` due then. When the item fires, the run is
/// created as a campaign of its own (`<id>@<run time>`, the series' task
/// without a schedule) and the series moves to its next run in the same
/// statement; then the item is queued again for that run. Every step may be
/// repeated: the move is a compare-and-set on the run waited for and the run's
/// id is its time, so a second firing, a crash before the item is queued again
/// or two instances at once create each run once. The runner's poll fires
/// series whose item was lost (`overdueSeries`), through the same path.
struct RecurringCampaigns: Sendable {
    let campaigns: CampaignStore
    let queue: DelayQueue
    let parser: TaskParser
    let logger: Logger
    let wake: @Sendable () -> Void

    init(infrastructure: Infrastructure, logger: Logger, wake: @escaping @Sendable () -> Void) {
        self.campaigns = CampaignStore(client: infrastructure.postgres)
        self.queue = infrastructure.delayQueue
        self.parser = TaskParser(channels: Set(infrastructure.configuration.channels.keys))
        self.logger = logger
        self.wake = wake
    }

    static let itemPrefix = "cron:"
    static let payload = DelayedWork.cronRun.payload
    /// How long a run may stay due before the runner's poll fires it without
    /// its queue item (normally the item fires it within milliseconds).
    static let grace: Duration = .seconds(10)

    /// Queues the series' next look at `due` (at `expiresAt` when that comes
    /// first, so a series ends when it expires), replacing its item.
    func queue(_ id: String, at due: Date, expiresAt: Date?) async throws {
        let at = expiresAt.map { min($0, due) } ?? due
        try await queue.schedule(id: Self.itemPrefix + id, payload: Self.payload, dueMs: Epoch.ms(at) + 20)
    }

    /// Does what series `id` has due now: nothing yet (its item is queued
    /// again), its run (or only the move past it while paused), or its end.
    func fire(_ id: String) async throws {
        // A compare-and-set that finds the series moved on looks again.
        for _ in 0..<3 {
            guard let series = try await campaigns.series(id) else {
                logger.info("recurring campaign unknown; queue item dropped", metadata: ["campaign": "\(id)"])
                return
            }
            guard !series.finished, [CampaignState.scheduled.rawValue, CampaignState.paused.rawValue].contains(series.state) else { return }
            let task: CampaignTask
            let cron: CronSchedule
            do {
                guard case .campaign(let parsed) = try parser.parse(Array(series.specJSON.utf8)), case .cron(let c) = parsed.schedule else {
                    throw ValidationError("schedule", "stored task is not a recurring campaign")
                }
                task = parsed
                cron = c
            } catch let error as ValidationError {
                // Today's configuration refuses the stored task (a channel was removed):
                // no run could work. The series ends `failed`, visibly.
                try await campaigns.failUnowned(id, error: "stored task no longer valid: \(error)")
                logger.error("recurring campaign failed", metadata: ["campaign": "\(id)", "error": "\(error)"])
                return
            }
            switch cron.decide(waitingFor: series.due, now: Date(), expiresAt: task.expiresAt) {
            case .wait(let until):
                // Waiting for a time that is not a run (a series moved by hand) moves to the run.
                if until != series.due, try await campaigns.advance(id, from: series.dueText, run: nil, next: until) == nil { continue }
                try await queue(id, at: until, expiresAt: task.expiresAt)
                return
            case .over:
                guard try await campaigns.advance(id, from: series.dueText, run: nil, next: nil) != nil else { continue }
                logger.info("recurring campaign ended: no run left before expires_at", metadata: ["campaign": "\(id)"])
                return
            case .run(let at, let skipped, let next):
                let runID = CampaignRun.id(of: id, at: at)
                guard let step = try await campaigns.advance(id, from: series.dueText, run: (runID, at), next: next) else { continue }
                if skipped > 0 {
                    logger.warning("recurring campaign missed runs while nothing could fire them; only the latest fires",
                                   metadata: ["campaign": "\(id)", "skipped": "\(skipped >= 10_000 ? "10000+" : "\(skipped)")",
                                              "run": "\(runID)"])
                }
                if step.state == CampaignState.paused.rawValue {
                    logger.info("recurring campaign paused; run skipped", metadata: ["campaign": "\(id)", "run": "\(runID)"])
                } else if step.created {
                    logger.info("recurring campaign run created", metadata: ["campaign": "\(id)", "run": "\(runID)"])
                    wake()
                } else {
                    logger.info("recurring campaign run existed already", metadata: ["campaign": "\(id)", "run": "\(runID)"])
                }
                if let next {
                    try await queue(id, at: next, expiresAt: task.expiresAt)
                } else {
                    logger.info("recurring campaign ended: its last run before expires_at fired", metadata: ["campaign": "\(id)"])
                }
                return
            }
        }
    }

    /// The safety net: fires series whose run is overdue (their queue item was lost).
    func fireOverdue() async throws {
        for id in try await campaigns.overdueSeries(grace: Self.grace) {
            logger.warning("recurring campaign overdue without its queue item; firing it", metadata: ["campaign": "\(id)"])
            try await fire(id)
        }
    }
}
