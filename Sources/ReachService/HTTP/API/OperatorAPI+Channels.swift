import ReachCore

extension OperatorAPI {
    var channelRoutes: [APIRoute] {
        [
            APIRoute(.get, "/v1/channels", .read, "Configured channels and their cluster-wide switch") { _ in try await listChannels() },
            APIRoute(.post, "/v1/channels/{name}/pause", .write, "Pause a channel cluster-wide: its sends are deferred, never dropped") { try await switchChannel($0, pause: true) },
            APIRoute(.post, "/v1/channels/{name}/resume", .write, "Resume a paused channel") { try await switchChannel($0, pause: false) },
        ]
    }

    func listChannels() async throws -> APIReply {
        let paused = try await switches.paused()
        let items = channels.keys.sorted().map { name in
            var w = JSONObjectWriter()
            w.add("name", name)
            w.add("provider", channels[name]?.provider)
            w.add("paused", json: paused[name] != nil ? "true" : "false")
            w.add("paused_since", paused[name].map(RFC3339.format))
            if let breaker = breakers?.state(name) { w.add("breaker", breaker) }
            return w.finish()
        }
        return .list(items, next: nil)
    }

    func switchChannel(_ request: APIRequest, pause: Bool) async throws -> APIReply {
        let name = request.parameter("name")
        guard channels[name] != nil else {
            throw APIError.notFound("channel '\(name)' is not configured; configured: \(channels.keys.sorted().joined(separator: ", "))")
        }
        let changed = pause ? try await switches.pause(name) : try await switches.resume(name)
        return APIReply(.ok, Self.object([("name", JSONText.quote(name)), ("paused", pause ? "true" : "false"), ("changed", changed ? "true" : "false")]),
                        target: name)
    }
}
