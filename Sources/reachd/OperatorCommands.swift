import ArgumentParser
import Foundation
import ReachCore

struct SegmentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "segment", abstract: "Segments (through the HTTP API).", subcommands: [Preview.self])

    struct Preview: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "POST /v1/segments/preview: count a segment and show up to 20 user ids; sends nothing.")
        @OptionGroup var api: APIOptions
        @Option(help: "A segment id from reach.segments.") var id: String?
        @Option(help: "A JSON file holding a rule (SPEC §4.3) or a whole {\"segment\": …} body; - for standard input.") var file: String?

        func run() async throws {
            try await operatorCommand {
                let body: String
                switch (id, file) {
                case (let id?, nil): body = JSONValue.object(["segment": .object(["id": .string(id)])]).jsonText
                case (nil, let file?):
                    let bytes = try Output.readFile(file)
                    guard let json = try? JSONParser.parse(bytes), let object = json.object else { throw CLIError("\(file) is not a JSON object") }
                    body = (object["segment"] != nil ? json : JSONValue.object(["segment": .object(["rule": json])])).jsonText
                default: throw CLIError("give exactly one of --id or --file")
                }
                let reply = try await api.client().call(.POST, "/v1/segments/preview", body: Array(body.utf8))
                if api.json { return Output.json(reply) }
                print("\(Output.cell(reply["count"])) users")
                for user in reply["sample"]?.array ?? [] { print("  \(Output.cell(user))") }
            }
        }
    }
}

struct TriggerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "trigger", abstract: "Trigger rules (through the HTTP API).",
                                                    subcommands: [List.self, Show.self, Create.self, Update.self, Delete.self])

    static func table(_ items: [JSONValue]) {
        Output.table(["ID", "EVENT", "CHANNELS", "DELAY", "QUIET", "ENABLED"], items.map { t in
            [Output.cell(t["id"]), Output.cell(t["event"]), t["channels"]?.jsonText ?? "-", Output.cell(t["delay_seconds"]),
             Output.cell(t["quiet_hours"]), Output.cell(t["enabled"])]
        })
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "GET /v1/triggers.")
        @OptionGroup var api: APIOptions
        @Option(help: "Only rules of this event.") var event: String?
        @Option(help: "At most this many.") var limit: Int = 500

        func run() async throws {
            try await operatorCommand {
                let items = try await api.client().all("/v1/triggers", query: [("event", event)], max: limit)
                api.json ? Output.json(.array(items)) : TriggerCommand.table(items)
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "GET /v1/triggers/{id} (always JSON).")
        @OptionGroup var api: APIOptions
        @Argument(help: "Rule id.") var id: String

        func run() async throws {
            try await operatorCommand { Output.json(try await api.client().call(.GET, "/v1/triggers/" + APIClient.pathPart(id))) }
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "POST /v1/triggers: a rule from a JSON file (with its id); validated before it is stored.")
        @OptionGroup var api: APIOptions
        @Argument(help: "JSON file, or - for standard input.") var file: String

        func run() async throws {
            try await operatorCommand {
                let reply = try await api.client().call(.POST, "/v1/triggers", body: try Output.readFile(file))
                api.json ? Output.json(reply) : print("trigger \(Output.cell(reply["id"])) created")
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "PUT /v1/triggers/{id}: replace (or create) a rule.")
        @OptionGroup var api: APIOptions
        @Argument(help: "Rule id.") var id: String
        @Argument(help: "JSON file, or - for standard input.") var file: String

        func run() async throws {
            try await operatorCommand {
                let reply = try await api.client().call(.PUT, "/v1/triggers/" + APIClient.pathPart(id), body: try Output.readFile(file))
                api.json ? Output.json(reply) : print("trigger \(Output.cell(reply["id"])) saved")
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "DELETE /v1/triggers/{id}.")
        @OptionGroup var api: APIOptions
        @Argument(help: "Rule id.") var id: String

        func run() async throws {
            try await operatorCommand {
                let reply = try await api.client().call(.DELETE, "/v1/triggers/" + APIClient.pathPart(id))
                api.json ? Output.json(reply) : print("trigger \(id) deleted")
            }
        }
    }
}

struct ChannelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "channel", abstract: "The cluster-wide channel switch (through the HTTP API).",
                                                    subcommands: [List.self, Pause.self, Resume.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "GET /v1/channels.")
        @OptionGroup var api: APIOptions

        func run() async throws {
            try await operatorCommand {
                let reply = try await api.client().call(.GET, "/v1/channels")
                if api.json { return Output.json(reply) }
                Output.table(["NAME", "PROVIDER", "PAUSED", "SINCE"], (reply["items"]?.array ?? []).map {
                    [Output.cell($0["name"]), Output.cell($0["provider"]), Output.cell($0["paused"]), Output.cell($0["paused_since"])]
                })
            }
        }
    }

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Pause a channel everywhere: its sends are deferred, never dropped.")
        @OptionGroup var api: APIOptions
        @Argument(help: "Channel name.") var name: String
        func run() async throws { try await switchChannel(api, name, "pause") }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Resume a paused channel.")
        @OptionGroup var api: APIOptions
        @Argument(help: "Channel name.") var name: String
        func run() async throws { try await switchChannel(api, name, "resume") }
    }

    static func switchChannel(_ api: APIOptions, _ name: String, _ action: String) async throws {
        try await operatorCommand {
            let reply = try await api.client().call(.POST, "/v1/channels/\(APIClient.pathPart(name))/\(action)")
            if api.json { return Output.json(reply) }
            let state = reply["paused"]?.bool == true ? "paused" : "running"
            print("channel \(name): \(state)\(reply["changed"]?.bool == false ? " (it already was)" : "")")
        }
    }
}
