import ReachCore
import ReachPostgres

extension OperatorAPI {
    var inboxRoutes: [APIRoute] {
        [
            APIRoute(.get, "/v1/inbox/{user_id}", .read, "A user's in-app messages, newest first, with the unread count") { try await inbox($0) },
            APIRoute(.post, "/v1/inbox/{user_id}/{id}/read", .write, "Mark a message read (idempotent)") { try await markRead($0) },
        ]
    }

    func inbox(_ request: APIRequest) async throws -> APIReply {
        let unreadOnly: Bool
        switch request.queryString("unread") {
        case nil, "false": unreadOnly = false
        case "true": unreadOnly = true
        default: throw APIError.badRequest("unread must be true or false", field: "unread")
        }
        let limit = try request.limit()
        let (items, unread) = try await InboxStore(client: postgres).list(userID: request.parameter("user_id"), unreadOnly: unreadOnly,
                                                                          before: try request.idCursor(), limit: limit)
        return .list(items.map(Self.inboxJSON), next: Self.next(items, limit: limit) { String($0.message.id) }, extra: [("unread", "\(unread)")])
    }

    func markRead(_ request: APIRequest) async throws -> APIReply {
        let user = request.parameter("user_id")
        guard let id = Int(request.parameter("id")), id > 0 else { throw APIError.badRequest("the message id must be a positive whole number", field: "id") }
        guard let entry = try await InboxStore(client: postgres).markRead(userID: user, id: id) else {
            throw APIError.notFound("user '\(user)' has no inbox message \(id)")
        }
        return APIReply(.ok, Self.inboxJSON(entry), target: "\(user)/\(id)")
    }

    static func inboxJSON(_ e: InboxStore.Entry) -> String {
        var w = JSONObjectWriter()
        w.add("id", e.message.id)
        w.add("user_id", e.message.userID)
        w.add("campaign_id", e.message.campaignID)
        w.add("title", e.message.title)
        w.add("body", e.message.body)
        w.add("created_at", e.message.createdAt)
        w.add("read_at", e.readAt)
        return w.finish()
    }
}
