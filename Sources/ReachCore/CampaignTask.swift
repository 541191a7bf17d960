import Foundation

/// Who a campaign targets (SPEC §3.1 `segment`): exactly one of the three forms.
public enum SegmentSelector: Sendable, Equatable {
    case id(String)
    case userIDs([String])
    case rule(SegmentRule)

    public static let maxUserIDs = 10_000
}

public enum CampaignSchedule: Sendable, Equatable {
    case now
    case at(Date)
    case delay(seconds: Int)
    /// Recurring: the campaign itself never runs; each run is a child campaign
    /// (`CampaignRun`) whose stored task is this one without a schedule.
    case cron(CronSchedule)

    /// When the campaign is due, given when its task was accepted; for a
    /// recurring one, its first run (or `acceptedAt` when it has none, so the
    /// series ends as soon as it is looked at).
    public func dueDate(acceptedAt: Date) -> Date {
        switch self {
        case .now: acceptedAt
        case .at(let date): date
        case .delay(let seconds): acceptedAt.addingTimeInterval(TimeInterval(seconds))
        case .cron(let cron): cron.next(after: acceptedAt) ?? acceptedAt
        }
    }

    public var isRecurring: Bool {
        if case .cron = self { return true }
        return false
    }
}

/// Title and body Mustache sources, with per-channel overrides.
public struct TemplateSpec: Sendable, Equatable {
    public struct Parts: Sendable, Equatable {
        public var title: String?
        public var body: String?
    }

    public var title: String?
    public var body: String
    public var channels: [String: Parts]

    /// The title and body sources for one channel (overrides first).
    public func sources(for channel: String) -> (title: String?, body: String) {
        let override = channels[channel]
        return (override?.title ?? title, override?.body ?? body)
    }
}

/// A validated campaign task (SPEC §3.1).
public struct CampaignTask: Sendable, Equatable {
    public var campaignID: String
    public var name: String?
    public var segment: SegmentSelector
    /// Sorted by channel name, so routing never depends on JSON key order.
    public var weights: [ChannelRouter.Weight]
    public var fallback: [String]
    public var template: TemplateSpec
    public var data: [String: JSONValue]
    public var schedule: CampaignSchedule
    public var expiresAt: Date?
    public var quietHours: Bool

    public var router: ChannelRouter { ChannelRouter(weights: weights, fallback: fallback) }
}

/// What a message on the tasks topic asks for.
public enum TaskMessage: Sendable, Equatable {
    case campaign(CampaignTask)
    case pause(campaignID: String)
    case resume(campaignID: String)
    case cancel(campaignID: String)

    public var campaignID: String {
        switch self {
        case .campaign(let task): task.campaignID
        case .pause(let id), .resume(let id), .cancel(let id): id
        }
    }
}
