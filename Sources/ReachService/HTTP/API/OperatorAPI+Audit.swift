import ReachCore
import ReachPostgres

extension OperatorAPI {
    var auditRoutes: [APIRoute] {
        [APIRoute(.get, "/v1/audit", .write, "Write calls as recorded in reach.audit, newest first") { try await listAudit($0) }]
    }

    func listAudit(_ request: APIRequest) async throws -> APIReply {
        let limit = try request.limit()
        let entries = try await AuditStore(client: postgres).list(token: request.queryString("token"), target: request.queryString("target"),
                                                                  since: try request.time("since"), before: try request.idCursor(), limit: limit)
        return .list(entries.map { e in
            var w = JSONObjectWriter()
            w.add("id", e.id)
            w.add("at", e.at)
            w.add("token_name", e.tokenName)
            w.add("client", e.client)
            w.add("method", e.method)
            w.add("route", e.route)
            w.add("target", e.target)
            w.add("status", e.status)
            w.add("body", e.body)
            return w.finish()
        }, next: Self.next(entries, limit: limit) { String($0.id) })
    }
}
