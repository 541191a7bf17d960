import Foundation
import ReachCore
import ReachService
import Testing
import TestSupport

/// The operator commands of the real binary, speaking to a running daemon's API.
@Suite("reachd operator commands over the HTTP API")
struct CLITests {
    func reachd(_ api: APIHarness, _ arguments: [String], token: String? = APIHarness.writeToken, stdin: String? = nil) async throws -> (Int32, String) {
        var environment = ["REACH_SERVER": "http://127.0.0.1:\(api.port)"]
        environment["REACH_TOKEN"] = token ?? ""
        let process = try spawn(TestEnvironment.reachdBinary.path, arguments, environment: environment)
        let code = try await process.wait(within: .seconds(30)) ?? -1
        return (code, process.output)
    }

    @Test("campaign create/list/show/watch/pause, segment preview, trigger create/list/delete, channel pause/list, dlq list: tables, --json, errors with exit 1")
    func operatorCommands() async throws {
        let api = try await APIHarness.start(users: 30)
        defer { api.stop() }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.unique("cli"))
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let task = dir.appendingPathComponent("task.json").path
        try #"{"campaign_id": "cli-1", "name": "CLI", "segment": {"id": "all"}, "channels": {"inapp": 1}, "template": {"body": "x"}}"#
            .write(toFile: task, atomically: true, encoding: .utf8)

        let (created, createdOut) = try await reachd(api, ["campaign", "create", task])
        #expect(created == 0 && createdOut.contains("campaign cli-1 accepted"), "\(createdOut)")
        let (watched, watchOut) = try await reachd(api, ["campaign", "watch", "cli-1", "--timeout", "60"])
        #expect(watched == 0 && watchOut.contains("campaign cli-1: done") && watchOut.contains("inapp"), "\(watchOut)")
        let (_, listOut) = try await reachd(api, ["campaign", "list"])
        #expect(listOut.contains("ID") && listOut.contains("cli-1") && listOut.contains("done"), "\(listOut)")
        let (_, jsonOut) = try await reachd(api, ["campaign", "list", "--json"])
        let parsed = try JSONParser.parse(Array(jsonOut.utf8))
        #expect(parsed.array?.first?["id"]?.string == "cli-1", "\(jsonOut)")
        let (_, showOut) = try await reachd(api, ["campaign", "show", "cli-1"])
        #expect(showOut.contains("state         done"), "\(showOut)")
        let (paused, pausedOut) = try await reachd(api, ["campaign", "pause", "cli-1"])
        #expect(paused == 1 && pausedOut.contains("reachd: campaign 'cli-1' is done") && pausedOut.contains("HTTP 409"), "\(pausedOut)")

        let (previewed, previewOut) = try await reachd(api, ["segment", "preview", "--id", "all"], token: APIHarness.readToken)
        #expect(previewed == 0 && previewOut.hasPrefix("30 users"), "\(previewOut)")

        let rule = dir.appendingPathComponent("rule.json").path
        try #"{"id": "cli-rule", "event": "signup", "channels": {"inapp": 1}, "template": {"body": "welcome"}}"#.write(toFile: rule, atomically: true, encoding: .utf8)
        #expect(try await reachd(api, ["trigger", "create", rule]).0 == 0)
        let (_, triggersOut) = try await reachd(api, ["trigger", "list"])
        #expect(triggersOut.contains("cli-rule") && triggersOut.contains("signup"), "\(triggersOut)")
        #expect(try await reachd(api, ["trigger", "delete", "cli-rule"]).0 == 0)
        let (missing, missingOut) = try await reachd(api, ["trigger", "delete", "cli-rule"])
        #expect(missing == 1 && missingOut.contains("does not exist") && missingOut.contains("HTTP 404"))

        let (_, pauseOut) = try await reachd(api, ["channel", "pause", "sms"])
        #expect(pauseOut.contains("channel sms: paused"), "\(pauseOut)")
        let (_, channelsOut) = try await reachd(api, ["channel", "list"])
        #expect(channelsOut.split(separator: "\n").contains { $0.hasPrefix("sms") && $0.contains("yes") }, "\(channelsOut)")
        #expect(try await reachd(api, ["channel", "resume", "sms"]).1.contains("channel sms: running"))
        #expect(try await reachd(api, ["dlq", "list"]).0 == 0)

        let (denied, deniedOut) = try await reachd(api, ["channel", "pause", "sms"], token: APIHarness.readToken)
        #expect(denied == 1 && deniedOut.contains("HTTP 403"), "\(deniedOut)")
        let (noToken, noTokenOut) = try await reachd(api, ["campaign", "list"], token: nil)
        #expect(noToken == 1 && noTokenOut.contains("REACH_TOKEN"), "\(noTokenOut)")
        let tokenFile = dir.appendingPathComponent("token").path
        try APIHarness.readToken.write(toFile: tokenFile, atomically: true, encoding: .utf8)
        #expect(try await reachd(api, ["campaign", "list", "--token-file", tokenFile], token: nil).0 == 0)
        let (down, downOut) = try await reachd(api, ["campaign", "list", "--server", "http://127.0.0.1:\(try TestEnvironment.freePort())"])
        #expect(down == 1 && downOut.contains("cannot reach"), "\(downOut)")
    }
}
