import ArgumentParser
import Foundation
import ReachCore

struct DeadLetterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "dlq", abstract: "Dead letters (through the HTTP API).", subcommands: [List.self, Replay.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "GET /v1/dead-letters: newest first.")
        @OptionGroup var api: APIOptions
        @Option(help: "Only this campaign.") var campaign: String?
        @Option(help: "Only this channel.") var channel: String?
        @Option(help: "Only dead letters that failed at or after this RFC 3339 time.") var since: String?
        @Option(help: "delivery or input.") var source: String?
        @Option(help: "At most this many.") var limit: Int = 50

        func run() async throws {
            try await operatorCommand {
                let items = try await api.client().all("/v1/dead-letters", query: [("campaign", campaign), ("channel", channel),
                                                                                   ("since", since), ("source", source)], max: limit)
                if api.json { return Output.json(.array(items)) }
                Output.table(["ID", "SOURCE", "REASON", "CAMPAIGN", "USER", "CHANNEL", "ATTEMPTS", "FAILED", "REPLAYED", "ERROR"], items.map { d in
                    [Output.cell(d["id"]), Output.cell(d["source"]), Output.cell(d["reason"]), Output.cell(d["campaign_id"]), Output.cell(d["user_id"]),
                     Output.cell(d["channel"]), Output.cell(d["attempts"]), Output.cell(d["failed_at"]), Output.cell(d["replayed_at"]),
                     String(Output.cell(d["error"]).prefix(60))]
                })
            }
        }
    }

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "POST /v1/dead-letters/replay: re-queue dead deliveries; they keep their message ids and are still sent at most once.")
        @OptionGroup var api: APIOptions
        @Option(help: "Only this campaign.") var campaign: String?
        @Option(help: "Only this channel.") var channel: String?
        @Option(help: "Only dead letters that failed at or after this RFC 3339 time.") var since: String?
        @Option(help: "Only these dead letter ids.") var id: [Int] = []
        @Option(help: "At most this many.") var limit: Int = 10_000
        @Flag(help: "Replay every dead delivery (when no filter is given).") var all = false

        func run() async throws {
            try await operatorCommand {
                var body: [String: JSONValue] = ["limit": .number(Double(limit))]
                if let campaign { body["campaign"] = .string(campaign) }
                if let channel { body["channel"] = .string(channel) }
                if let since { body["since"] = .string(since) }
                if !id.isEmpty { body["ids"] = .array(id.map { .number(Double($0)) }) }
                if all { body["all"] = .bool(true) }
                let reply = try await api.client().call(.POST, "/v1/dead-letters/replay", body: Array(JSONValue.object(body).jsonText.utf8))
                if api.json { return Output.json(reply) }
                let count = reply["replayed"]?.integer ?? 0
                print("re-queued \(count) dead deliver\(count == 1 ? "y" : "ies")")
            }
        }
    }
}
