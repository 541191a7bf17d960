import Foundation
import Logging
import ReachCore
import ReachKafka
import ReachPostgres
import ServiceLifecycle
import Synchronization

// How the pipeline waits out PostgreSQL, Redis and Kafka being away: these
// retry until the work is durable, and say exactly when they give up.

/// Retries a write that must not be lost (it records what a provider already
/// accepted) until it succeeds. It ends otherwise only with `FencedOut` (the
/// write belongs to a lease another runner holds now), a PostgreSQL data error
/// (the content cannot be stored, `PostgresError.isDataError`) or
/// `CancellationError` (the process ran out of time to stop), all thrown.
@discardableResult
func persist<T: Sendable>(_ logger: Logger, _ what: String, _ body: () async throws -> T) async throws -> T {
    try await retrying(logger, what, body)!
}

/// Runs `body` until it succeeds, with backoff; nil when `stop` says so before
/// an attempt. `FencedOut` and the task's cancellation end it with an error.
func retrying<T: Sendable>(_ logger: Logger, _ what: String, stop: () -> Bool = { false },
                           _ body: () async throws -> T) async throws -> T? {
    var attempt = 0
    let backoff = Backoff(base: .milliseconds(50), max: .seconds(2))
    while true {
        if stop() { return nil }
        do {
            return try await body()
        } catch let fenced as FencedOut {
            throw fenced
        } catch let refused as PostgresError where refused.isDataError {
            // PostgreSQL refuses the content itself: no retry changes that.
            throw refused
        } catch {
            attempt += 1
            if Task.isCancelled { throw CancellationError() }
            if attempt == 1 || attempt % 20 == 0 {
                logger.warning("waiting for a dependency; retrying", metadata: ["what": "\(what)", "error": "\(error)", "attempt": "\(attempt)"])
            }
            try? await Task.sleep(for: backoff.delay(afterAttempt: attempt))
        }
    }
}

/// Retries infrastructure failures with backoff until they succeed; false when
/// the service is shutting down first (the Kafka offset then stays uncommitted).
func untilDone(_ logger: Logger, _ body: () async throws -> Void) async throws -> Bool {
    let backoff = Backoff(base: .milliseconds(100), max: .seconds(5))
    var attempt = 0
    while true {
        do {
            try await body()
            return true
        } catch {
            attempt += 1
            if Task.isCancelled || Task.isShuttingDownGracefully { return false }
            logger.warning("will retry", metadata: ["error": "\(error)", "attempt": "\(attempt)"])
            try? await Task.sleep(for: backoff.delay(afterAttempt: attempt))
        }
    }
}

/// Commits a consumer's next offsets, retrying infrastructure failures like
/// `untilDone`; false when the service is shutting down first. A commit the
/// group refuses because it moved past this member's generation is given up,
/// not retried: the next poll rejoins the group, and whoever owns the
/// partitions then reads the uncommitted records again, which the intakes
/// handle idempotently (a campaign id is created once, a trigger's row is per event and rule).
func commitOffsets(_ consumer: KafkaConsumer, _ next: [TopicPartition: Int64], _ logger: Logger) async throws -> Bool {
    try await untilDone(logger) {
        if try await consumer.commitIfStillMember(next) == false {
            logger.warning("offsets not committed: the group rebalanced this member out; the partitions' next owner reads them again",
                           metadata: ["offsets": "\(next.map { "\($0.key.topic)/\($0.key.partition)@\($0.value)" }.sorted())"])
        }
    }
}
