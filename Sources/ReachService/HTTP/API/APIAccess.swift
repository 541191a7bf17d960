import Crypto
import Foundation
import ReachCore
import Synchronization

/// What a route needs of the caller's token (SPEC §7: `write` includes `read`).
public enum APIScope: String, Sendable, Comparable {
    case read, write

    public static func < (a: APIScope, b: APIScope) -> Bool { a == .read && b == .write }
}

/// The caller a bearer token identifies: the token's name, never the token.
public struct APIPrincipal: Sendable, Equatable {
    public var name: String
    public var scope: APIScope
}

/// The configured API tokens. A presented token is compared with every one
/// of them through SHA-256 digests in constant time, so neither which token
/// nor how much of one matched shows in the answer time.
public struct APITokens: Sendable {
    struct Entry: Sendable {
        var digest: [UInt8]
        var principal: APIPrincipal
    }
    let entries: [Entry]

    public init(_ tokens: [(secret: String, name: String, scope: APIScope)]) {
        entries = tokens.map { Entry(digest: Array(SHA256.hash(data: Data($0.secret.utf8))), principal: .init(name: $0.name, scope: $0.scope)) }
    }

    /// Tokens from `auth.tokens`, their secrets read from the environment or files; tokens whose secret is missing are left out.
    public init(settings: AuthSettings, secrets: Secrets = Secrets()) {
        self.init(settings.tokens.compactMap { t in
            secrets.value(env: t.tokenEnv, file: t.tokenFile).map { ($0, t.name, APIScope(rawValue: t.scope) ?? .read) }
        })
    }

    /// The principal of an `Authorization` header value, nil for a missing, malformed or unknown token.
    public func principal(authorization: String?) -> APIPrincipal? {
        guard let authorization, authorization.count > 7,
              authorization.prefix(7).lowercased() == "bearer " else { return nil }
        let presented = Array(SHA256.hash(data: Data(authorization.dropFirst(7).trimmingCharacters(in: .whitespaces).utf8)))
        var found: APIPrincipal?
        for entry in entries {
            var difference: UInt8 = 0
            for i in 0..<presented.count { difference |= presented[i] ^ entry.digest[i] }
            if difference == 0 && found == nil { found = entry.principal }
        }
        return found
    }
}

/// A token bucket per token name, local to this instance: a runaway script
/// gets 429 with `Retry-After` instead of starving the pipeline's PostgreSQL pool.
public final class APIRateLimiter: Sendable {
    let rate: Double
    let burst: Double
    private let buckets = Mutex<[String: (tokens: Double, at: ContinuousClock.Instant)]>([:])

    /// `rate` requests a second on average, up to `burst` at once; rate 0 turns limiting off.
    public init(rate: Double, burst: Double) {
        self.rate = rate
        self.burst = max(1, burst)
    }

    /// nil when the request may go ahead, else the seconds to wait before the next one would.
    public func admit(_ key: String, now: ContinuousClock.Instant = .now) -> Int? {
        guard rate > 0 else { return nil }
        return buckets.withLock { all in
            var bucket = all[key] ?? (burst, now)
            bucket.tokens = min(burst, bucket.tokens + (now - bucket.at).seconds * rate)
            bucket.at = now
            defer { all[key] = bucket }
            if bucket.tokens >= 1 {
                bucket.tokens -= 1
                return nil
            }
            return max(1, Int(((1 - bucket.tokens) / rate).rounded(.up)))
        }
    }
}
