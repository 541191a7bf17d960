import ArgumentParser
import Foundation
import ReachCore

extension CampaignCommand {
    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "POST /v1/campaigns: validate and publish a task (SPEC §3.1; kind optional).")
        @OptionGroup var api: APIOptions
        @Argument(help: "JSON file with the task, or - for standard input.") var file: String

        func run() async throws {
            try await operatorCommand {
                let reply = try await api.client().call(.POST, "/v1/campaigns", body: try Output.readFile(file))
                if api.json { return Output.json(reply) }
                let id = reply["campaign_id"]?.string ?? "?"
                if reply["existing"]?.bool == true {
                    print("campaign \(id) already exists (\(reply["state"]?.string ?? "?")); nothing published")
                } else {
                    print("campaign \(id) accepted: published to \(Output.cell(reply["topic"]))[\(Output.cell(reply["partition"]))] at offset \(Output.cell(reply["offset"]))")
                }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "GET /v1/campaigns: campaigns, newest first.")
        @OptionGroup var api: APIOptions
        @Option(help: "Only campaigns in this state (scheduled running paused done cancelled failed).") var state: String?
        @Option(help: "Only campaigns created at or after this RFC 3339 time.") var since: String?
        @Option(help: "Only the runs of this recurring series.") var parent: String?
        @Option(help: "At most this many.") var limit: Int = 50

        func run() async throws {
            try await operatorCommand {
                let items = try await api.client().all("/v1/campaigns", query: [("state", state), ("since", since), ("parent", parent)], max: limit)
                if api.json { return Output.json(.array(items)) }
                Output.table(["ID", "STATE", "TARGETED", "SENT", "SKIPPED", "DEAD", "CREATED", "NAME"], items.map { c in
                    let counters = c["counters"]
                    return [Output.cell(c["id"]), Output.cell(c["state"]), Output.cell(counters?["targeted"]), Output.cell(counters?["sent"]),
                            Output.cell(counters?["skipped"]), Output.cell(counters?["dead"]), Output.cell(c["created_at"]), Output.cell(c["name"])]
                })
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "GET /v1/campaigns/{id}: state, counters, split and progress.")
        @OptionGroup var api: APIOptions
        @Argument(help: "Campaign id.") var id: String

        func run() async throws {
            try await operatorCommand {
                let c = try await api.client().call(.GET, "/v1/campaigns/" + APIClient.pathPart(id))
                if api.json { return Output.json(c) }
                for key in ["id", "name", "state", "error", "created_at", "scheduled_at", "started_at", "finished_at", "expires_at"] {
                    print(key.padding(toLength: 14, withPad: " ", startingAt: 0) + Output.cell(c[key]))
                }
                let p = c["progress"]
                print("progress      \(Output.cell(p?["done"])) done of \(Output.cell(p?["total"])) (\(Output.cell(p?["rows"])) rows), \(Output.cell(c["throughput_per_second"]))/s")
                for (label, key) in [("statuses", "statuses"), ("reasons", "reasons")] {
                    let pairs = (c[key]?.object ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\(Output.cell($0.value))" }
                    print(label.padding(toLength: 14, withPad: " ", startingAt: 0) + (pairs.isEmpty ? "-" : pairs.joined(separator: " ")))
                }
                for (channel, counts) in (c["channels"]?.object ?? [:]).sorted(by: { $0.key < $1.key }) {
                    let pairs = (counts.object ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\(Output.cell($0.value))" }
                    print("  \(channel.padding(toLength: 12, withPad: " ", startingAt: 0))\(pairs.joined(separator: " "))")
                }
            }
        }
    }

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Pause a campaign: no new provider requests within 2 s.")
        @OptionGroup var api: APIOptions
        @Argument(help: "Campaign id.") var id: String
        func run() async throws { try await control(api, id, "pause") }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Resume a paused campaign where it stopped.")
        @OptionGroup var api: APIOptions
        @Argument(help: "Campaign id.") var id: String
        func run() async throws { try await control(api, id, "resume") }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel a campaign: the remaining users end skipped/cancelled.")
        @OptionGroup var api: APIOptions
        @Argument(help: "Campaign id.") var id: String
        func run() async throws { try await control(api, id, "cancel") }
    }
}

func control(_ api: APIOptions, _ id: String, _ action: String) async throws {
    try await operatorCommand {
        let reply = try await api.client().call(.POST, "/v1/campaigns/\(APIClient.pathPart(id))/\(action)")
        if api.json { return Output.json(reply) }
        print("campaign \(id): \(Output.cell(reply["state"]))")
    }
}
