import Foundation

/// Placeholder of the cluster-wide channel switch (branch `switch` brings the real one).
public struct ChannelSwitches: Sendable {
    let redis: RedisClient
    let key: String

    public init(redis: RedisClient, prefix: String) {
        self.redis = redis
        self.key = prefix + "channels:paused"
    }

    public func pause(_ channel: String) async throws -> Bool {
        try await redis.send("HSETNX", key, channel, String(Int64(Date().timeIntervalSince1970 * 1000))).int == 1
    }

    public func resume(_ channel: String) async throws -> Bool {
        try await redis.send("HDEL", key, channel).int == 1
    }

    public func paused() async throws -> [String: Date] {
        let items = try await redis.send("HGETALL", key).array ?? []
        var out: [String: Date] = [:]
        var i = 0
        while i + 1 < items.count {
            if let name = items[i].string, let ms = items[i + 1].int { out[name] = Date(timeIntervalSince1970: Double(ms) / 1000) }
            i += 2
        }
        return out
    }
}
