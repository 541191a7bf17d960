import Foundation
import ReachCore
import ReachRedis

/// What a delay-queue item asks for when it comes due: one type for every
/// kind, so the scheduler switches over cases instead of sniffing payloads.
///
/// Items outlive a deploy (they wait in Redis for hours), so the wire form
/// is the one they were always written in: a JSON object whose `kind` is
/// `campaign_start`, `cron_run`, `trigger` (`rule_id`, `event`) or `retry`
/// (`campaign_id`, `user_id`, `channel`, `attempts`, optional `trigger` with the
/// rule and event of a trigger send as JSON text). A replay is a retry that starts
/// again at attempt 0.
enum DelayedWork: Sendable {
    /// A timed campaign is due: the runner claims it from PostgreSQL.
    case campaignStart
    /// A recurring campaign's run is due (the item id names the series).
    case cronRun
    /// A trigger rule's delayed first send.
    case triggerSend(TriggerSender.Delayed)
    /// One more attempt for a user (a retry, a deferral or a replay).
    case retry(Retry)

    /// What a retry, a deferral or a replay carries: enough to rebuild the
    /// message on the channel first chosen. A trigger send has no stored
    /// campaign, so its retry carries the rule and event as well (`trigger`).
    struct Retry: Codable, Sendable, Equatable {
        var kind = "retry"
        var campaign_id: String
        var user_id: String
        var channel: String
        /// Attempts spent so far (0 for a replay or a deferral before the first attempt).
        var attempts: Int
        var trigger: String? = nil

        init(campaign_id: String, user_id: String, channel: String, attempts: Int, trigger: String? = nil) {
            self.campaign_id = campaign_id
            self.user_id = user_id
            self.channel = channel
            self.attempts = attempts
            self.trigger = trigger
        }

        init(_ message: OutboundMessage, attempts: Int, trigger: String?) {
            self.init(campaign_id: message.campaignID, user_id: message.userID, channel: message.channel, attempts: attempts, trigger: trigger)
        }

        /// One item per (campaign, user): a newer retry replaces a queued one.
        static func itemID(campaignID: String, userID: String) -> String { "retry:\(campaignID):\(userID)" }

        /// The delay-queue item for this retry, due at `dueMs` (ms since the epoch).
        func queueItem(dueMs: Int64) -> DelayQueue.NewItem {
            (Self.itemID(campaignID: campaign_id, userID: user_id), DelayedWork.retry(self).payload, dueMs)
        }

        /// The rule and event of a trigger send this retry belongs to, when it carries them.
        var triggerSend: TriggerSender.Delayed? {
            trigger.flatMap(TriggerSender.Delayed.init(json:))
        }
    }

    init?(payload: String) {
        guard let kind = (try? JSONParser.parse(payload))?["kind"]?.string else { return nil }
        let data = Data(payload.utf8)
        switch kind {
        case "campaign_start": self = .campaignStart
        case "cron_run": self = .cronRun
        case "trigger":
            guard let delayed = TriggerSender.Delayed(json: payload) else { return nil }
            self = .triggerSend(delayed)
        case "retry":
            guard let retry = try? JSONDecoder().decode(Retry.self, from: data) else { return nil }
            self = .retry(retry)
        default: return nil
        }
    }

    var payload: String {
        switch self {
        case .campaignStart: #"{"kind":"campaign_start"}"#
        case .cronRun: #"{"kind":"cron_run"}"#
        case .triggerSend(let delayed): String(decoding: (try? JSONEncoder().encode(delayed)) ?? Data(), as: UTF8.self)
        case .retry(let retry): String(decoding: (try? JSONEncoder().encode(retry)) ?? Data(), as: UTF8.self)
        }
    }
}
