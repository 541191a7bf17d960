import Foundation
import Logging
import ReachCore
import ReachKafka
import ReachPostgres
import ServiceLifecycle
import Synchronization

/// The enabled rules of `reach.triggers`, re-read every `refresh` so plain-SQL
/// changes take effect within 5 s. A rule that does not validate is logged and left out.
public final class TriggerRules: Sendable {
    private let rules = Mutex<(byEvent: [String: [TriggerRule]], byID: [String: TriggerRule], loadedAt: ContinuousClock.Instant?)>(([:], [:], nil))
    let postgres: PostgresClient
    let channels: Set<String>
    let logger: Logger
    let refresh: Duration

    public init(postgres: PostgresClient, channels: Set<String>, logger: Logger, refresh: Duration = .seconds(2)) {
        self.postgres = postgres
        self.channels = channels
        self.logger = logger
        self.refresh = refresh
    }

    public func reload() async throws {
        var byEvent: [String: [TriggerRule]] = [:]
        var byID: [String: TriggerRule] = [:]
        for row in try await TriggerStore(client: postgres).enabled() {
            do {
                let rule = try TriggerRule(id: row.id, event: row.event, channelsJSON: row.channelsJSON, fallbackJSON: row.fallbackJSON,
                                           templateJSON: row.templateJSON, delaySeconds: row.delaySeconds, quietHours: row.quietHours,
                                           channels: channels)
                byEvent[rule.event, default: []].append(rule)
                byID[rule.id] = rule
            } catch {
                logger.error("trigger rule ignored", metadata: ["rule": "\(row.id)", "error": "\(error)"])
            }
        }
        rules.withLock { $0 = (byEvent, byID, .now) }
    }

    func fresh() async throws {
        let loadedAt = rules.withLock { $0.loadedAt }
        if loadedAt.map({ ContinuousClock.now - $0 >= refresh }) ?? true { try await reload() }
    }

    public func rules(for event: String) async throws -> [TriggerRule] {
        try await fresh()
        return rules.withLock { $0.byEvent[event] ?? [] }
    }

    public func rule(id: String) async throws -> TriggerRule? {
        try await fresh()
        return rules.withLock { $0.byID[id] }
    }

    /// The enabled rule whose sends carry `campaignID` (`t:<rule>:<event_id>`),
    /// from the rules as last loaded. A rule id may itself hold a `:`, so the
    /// longest id that fits wins.
    func rule(forCampaignID campaignID: String) -> TriggerRule? {
        rules.withLock { r in
            r.byID.values.filter { campaignID.hasPrefix("t:\($0.id):") }.max { $0.id.count < $1.id.count }
        }
    }
}
