import Foundation

/// The cluster-wide channel switch (SPEC §7 `/v1/channels`): one Redis hash
/// `<prefix>channels:paused`, field = channel, value = when it was paused (ms
/// since the epoch). Every instance reads it (through a short cache, see
/// `PausedChannels` in ReachService) and defers a paused channel's sends
/// through the delay queue; nothing here drops or sends anything.
///
/// Each call is a single command on one key, so it is atomic on its own and
/// the key lives in one Redis Cluster slot; no script is needed.
public struct ChannelSwitches: Sendable {
    public let redis: RedisClient
    public let prefix: String

    public init(redis: RedisClient, prefix: String) {
        self.redis = redis
        self.prefix = prefix
    }

    /// The hash of paused channels.
    public var key: String { "\(prefix)channels:paused" }

    /// Pauses the channel cluster-wide; false when it was already paused.
    /// A second pause keeps the first one's time (HSETNX).
    public func pause(_ channel: String) async throws -> Bool {
        try await redis.send("HSETNX", key, channel, Int64((Date().timeIntervalSince1970 * 1000).rounded())).int == 1
    }

    /// false when it was not paused.
    public func resume(_ channel: String) async throws -> Bool {
        (try await redis.send("HDEL", key, channel).int ?? 0) > 0
    }

    /// Paused channels and since when (the time the pause was set).
    public func paused() async throws -> [String: Date] {
        let reply = try await redis.send("HGETALL", key)
        guard let values = reply.array, values.count % 2 == 0 else {
            throw RedisError(.unexpectedReply, "HGETALL \(key) answered \(reply)")
        }
        var result: [String: Date] = [:]
        for i in stride(from: 0, to: values.count, by: 2) {
            guard let channel = values[i].string else { continue }
            // A value that is not a number (written by hand) still pauses the channel; its time is unknown.
            let ms = values[i + 1].int ?? 0
            result[channel] = Date(timeIntervalSince1970: Double(ms) / 1000)
        }
        return result
    }
}
