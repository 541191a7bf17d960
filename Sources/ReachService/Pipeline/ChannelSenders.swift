import Foundation
import Logging
import ReachChannels
import ReachCore
import ReachRedis
import Synchronization

/// The provider requests of this process, one pool per channel: at most the
/// channel's `concurrency` batches are in flight at once, whoever sends them —
/// every page of every campaign, trigger batches and retries share the pool —
/// so a crash can resend at most `concurrency × batch_size` messages per
/// channel. Trigger sends (`urgent`) go ahead of campaign batches waiting for a
/// sender, so a big campaign does not hold up events.
///
/// Before every request the batch passes, in order: the run's gate (pause,
/// cancel, expiry, lease, shutdown), the cluster-wide channel switch, the
/// circuit breaker and the cluster-wide rate limit. A request on the wire is
/// never cancelled: its answer is kept, and each accepted batch is marked sent
/// in Redis as soon as the provider answers.
final class ChannelSenders: Sendable {
    /// A message's fate: the provider's answer, or held back by the gate.
    enum Dispatched: Sendable {
        case outcome(SendOutcome)
        case withheld(SendGate.Hold)
    }

    let registry: ChannelRegistry
    let breakers: ChannelBreakers
    let pauses: PausedChannels
    let rateLimiter: RateLimiter
    let idempotency: IdempotencyStore
    let metrics: PipelineMetrics
    let logger: Logger
    private let pools: [String: SenderPool]

    init(infrastructure: Infrastructure, registry: ChannelRegistry, breakers: ChannelBreakers, pauses: PausedChannels,
         metrics: PipelineMetrics, logger: Logger) {
        (self.registry, self.breakers, self.pauses, self.metrics, self.logger) = (registry, breakers, pauses, metrics, logger)
        (self.rateLimiter, self.idempotency) = (infrastructure.rateLimiter, infrastructure.idempotency)
        self.pools = registry.channels.keys.reduce(into: [:]) { $0[$1] = SenderPool(size: registry.policy($1).concurrency) }
    }

    /// Sends per channel in batches of its `batch_size`, all channels at once;
    /// each message's fate at its own position (no lookup by message id).
    /// `spread` says where the messages' idempotency keys live (their sent marks).
    func send(_ messages: [OutboundMessage], gate: SendGate, urgent: Bool = false, spread: KeySpread = .single) async -> [Dispatched] {
        guard !messages.isEmpty else { return [] }
        var byChannel: [String: [Int]] = [:]
        for (index, message) in messages.enumerated() { byChannel[message.channel, default: []].append(index) }
        var all = [Dispatched](repeating: .outcome(.retryable("no outcome")), count: messages.count)
        await withTaskGroup(of: ([Int], [Dispatched]).self) { group in
            for (name, indices) in byChannel {
                guard let routes = registry.routes[name], !routes.isEmpty, let pool = pools[name] else {
                    group.addTask { (indices, Array(repeating: .outcome(.permanent("channel \(name) is not configured")), count: indices.count)) }
                    continue
                }
                let size = registry.policy(name).batchSize
                for start in stride(from: 0, to: indices.count, by: size) {
                    let positions = Array(indices[start..<min(start + size, indices.count)])
                    let batch = positions.map { messages[$0] }
                    group.addTask {
                        await pool.acquire(urgent: urgent)
                        defer { pool.release() }
                        return (positions, await self.send(batch, channel: name, routes: routes, gate: gate, spread: spread))
                    }
                }
            }
            for await (positions, part) in group {
                for (position, dispatched) in zip(positions, part) { all[position] = dispatched }
            }
        }
        return all
    }

    /// One batch, holding one of its channel's senders. It goes to the first provider, in order,
    /// whose breaker lets it through (failover); when every breaker is open it is deferred.
    private func send(_ batch: [OutboundMessage], channel name: String, routes: [ProviderRoute], gate: SendGate,
                      spread: KeySpread) async -> [Dispatched] {
        func all(_ dispatched: Dispatched) -> [Dispatched] { Array(repeating: dispatched, count: batch.count) }
        // Paused cluster-wide: deferred through the delay queue like an open breaker (no attempt spent).
        let paused = Dispatched.outcome(.paused(after: PausedChannels.deferral))
        if case .hold(let hold) = gate.check() { return all(.withheld(hold)) }
        if await pauses.isPaused(name) { return all(paused) }
        var breaker = breakers.gate(name)
        if case .wait(let wait) = breaker { return all(.outcome(.deferred(after: wait))) }
        if let rate = registry.policy(name).ratePerSecond {
            let (verdict, waited) = await waitForRate(batch.count, channel: name, rate: rate, gate: gate)
            if case .hold(let hold) = verdict { return all(.withheld(hold)) }
            if waited, await pauses.isPaused(name) {
                // Paused while this batch waited out the rate limit's debt.
                try? await rateLimiter.refund(name, count: batch.count, ratePerSecond: rate)
                return all(paused)
            }
        }
        var outcomes: [SendOutcome] = []
        // At most one call per provider. A failed half-open probe re-opens that provider's breaker
        // and the same batch goes straight on to the next provider whose breaker lets it through;
        // only when none does is it deferred. (Deferring it instead would bring it back just as the
        // failed provider's cool-down ends, to be probed and deferred again, for ever.)
        for _ in routes.indices {
            let index = breaker.provider ?? 0
            let route = routes[min(index, routes.count - 1)]
            let start = ContinuousClock.now
            // Not cancellable from here on: an accepted request must come back as accepted.
            outcomes = await route.channel.send(batch)
            metrics.sendDuration(channel: name, provider: route.name, ContinuousClock.now - start)
            let healthy = outcomes.contains { $0.status == .sent || $0.status == .permanent }
            breakers.record(name, provider: index, success: healthy)
            for i in outcomes.indices { outcomes[i].provider = route.name }
            guard case .probe(_, let coolDown) = breaker, !healthy else { break }
            // The provider is still down: that says nothing about these messages.
            outcomes = outcomes.map { $0.status == .retryable ? .deferred(after: coolDown) : $0 }
            if case .hold = gate.check() { break }
            let next = breakers.gate(name)
            guard let nextIndex = next.provider, nextIndex != index else { break }
            breaker = next
        }
        let accepted = zip(batch.indices, outcomes).compactMap { index, outcome in
            outcome.status == .sent ? (spread.scope(campaignID: batch[index].campaignID, userID: batch[index].userID), batch[index].userID) : nil
        }
        _ = try? await persist(logger, "sent marks") { try await idempotency.markSent(accepted) }
        return outcomes.map { .outcome($0) }
    }

    /// Takes a batch's tokens from the cluster-wide limit, then waits out any
    /// debt in short steps, asking the gate at each; a held batch gives its
    /// tokens back. Redis unreachable: wait for it rather than exceed the limit.
    private func waitForRate(_ count: Int, channel: String, rate: Int, gate: SendGate) async -> (SendVerdict, waited: Bool) {
        var wait = Duration.zero
        var failures = 0
        while true {
            do {
                wait = try await rateLimiter.acquire(channel, count: count, ratePerSecond: rate, nowMs: Epoch.ms())
                break
            } catch {
                failures += 1
                if failures == 1 { logger.warning("rate limiter unavailable; waiting", metadata: ["error": "\(error)"]) }
                try? await Task.sleep(for: .milliseconds(min(1_000, 100 * failures)))
                if case .hold(let hold) = gate.check() { return (.hold(hold), false) }
            }
        }
        let until = ContinuousClock.now + wait
        while true {
            if case .hold(let hold) = gate.check() {
                try? await rateLimiter.refund(channel, count: count, ratePerSecond: rate)
                return (.hold(hold), false)
            }
            guard ContinuousClock.now < until else { return (.go, wait > .zero) }
            try? await Task.sleep(for: min(.milliseconds(100), until - ContinuousClock.now))
        }
    }
}
