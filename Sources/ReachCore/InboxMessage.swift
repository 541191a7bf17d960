/// An in-app message as stored in `reach.inbox` and published to the user's
/// Redis channel (SPEC §6): `id, user_id, campaign_id, title, body, created_at`.
public struct InboxMessage: Sendable, Equatable {
    public var id: Int
    public var userID: String
    public var campaignID: String
    public var title: String
    public var body: String
    /// RFC 3339, UTC, milliseconds.
    public var createdAt: String

    public init(id: Int, userID: String, campaignID: String, title: String, body: String, createdAt: String) {
        self.id = id
        self.userID = userID
        self.campaignID = campaignID
        self.title = title
        self.body = body
        self.createdAt = createdAt
    }

    /// The JSON a subscriber receives.
    public var json: String {
        var w = JSONObjectWriter()
        w.add("id", id)
        w.add("user_id", userID)
        w.add("campaign_id", campaignID)
        w.add("title", title)
        w.add("body", body)
        w.add("created_at", createdAt)
        return w.finish()
    }
}
