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
        (self.id, self.userID, self.campaignID) = (id, userID, campaignID)
        (self.title, self.body, self.createdAt) = (title, body, createdAt)
    }

    /// The JSON a subscriber receives.
    public var json: String {
        var w = JSONObjectWriter()
        w.add("id", id)
        for (key, value) in [("user_id", userID), ("campaign_id", campaignID), ("title", title), ("body", body), ("created_at", createdAt)] {
            w.add(key, value)
        }
        return w.finish()
    }
}
