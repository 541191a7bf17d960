import Logging
import ReachRedis
import Synchronization

/// This process's view of the cluster-wide channel switch (`ChannelSwitches`),
/// shared by every sender in the process like `ChannelBreakers`, with its
/// state exported as `reach_channel_paused{channel}`.
///
/// The channel senders ask it before every provider batch, so the answer must be
/// cheap: the paused set is kept in memory and read from Redis again when it
/// is older than `interval` (500 ms) — one HGETALL per instance per interval
/// while sending, not one per batch. A pause therefore stops new batches on
/// every instance within `interval` plus one Redis round trip (well under 1 s);
/// a batch that passed the check just before may still be sent.
public final class PausedChannels: Sendable {
    /// How old the cached set may be before a sender reads it again.
    public static let interval: Duration = .milliseconds(500)
    /// How long a paused channel's send waits in the delay queue before it is
    /// looked at again (and deferred again while the channel is still paused).
    public static let deferral: Duration = .seconds(5)

    private struct State {
        var paused: Set<String> = []
        var loadedAt: ContinuousClock.Instant?
        var refreshing = false
        var failures = 0
    }

    private let state = Mutex(State())
    let switches: ChannelSwitches
    let channels: [String]
    let metrics: PipelineMetrics
    let logger: Logger
    let interval: Duration

    public init(switches: ChannelSwitches, channels: [String], metrics: PipelineMetrics, logger: Logger,
                interval: Duration = PausedChannels.interval) {
        self.switches = switches
        self.channels = channels.sorted()
        self.metrics = metrics
        self.logger = logger
        self.interval = interval
        // Visible from the first scrape: every configured channel starts unpaused.
        for channel in self.channels { metrics.channelPaused(channel: channel, false) }
    }

    /// Whether `channel` is paused, from a set at most `interval` old. One
    /// caller reads Redis when it is stale while the others use the last set;
    /// before the first read every caller waits for one.
    func isPaused(_ channel: String) async -> Bool {
        let now = ContinuousClock.now
        let (paused, mustRead) = state.withLock { s -> (Set<String>, Bool) in
            guard let loadedAt = s.loadedAt else { return (s.paused, true) }
            if now - loadedAt < interval || s.refreshing { return (s.paused, false) }
            s.refreshing = true
            return (s.paused, true)
        }
        guard mustRead else { return paused.contains(channel) }
        return await refresh().contains(channel)
    }

    /// Reads the switch now and sets `reach_channel_paused` for every
    /// configured channel. Redis unreachable: the last set stays in force
    /// (sends stall on their idempotency claims then anyway) and is read
    /// again after `interval`.
    @discardableResult
    public func refresh() async -> Set<String> {
        let read = try? await switches.paused()
        let (paused, failures) = state.withLock { s -> (Set<String>, Int) in
            s.refreshing = false
            s.loadedAt = .now
            if let read {
                s.paused = Set(read.keys)
                s.failures = 0
            } else {
                s.failures += 1
            }
            return (s.paused, s.failures)
        }
        if read != nil {
            for channel in channels { metrics.channelPaused(channel: channel, paused.contains(channel)) }
        } else if failures == 1 || failures % 120 == 0 {
            logger.warning("channel switch not readable; keeping the last known paused channels",
                           metadata: ["paused": "\(paused.sorted())", "failures": "\(failures)"])
        }
        return paused
    }
}
