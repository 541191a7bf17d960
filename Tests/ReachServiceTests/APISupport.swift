import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import ReachDevTools
import ReachKafka
import ReachPostgres
import ReachService
import TestSupport

struct APIReplyData {
    let status: Int
    let body: String
    let headers: [String: String]

    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:] }
    var items: [[String: Any]] { json["items"] as? [[String: Any]] ?? [] }
    var errorCode: String? { (json["error"] as? [String: Any])?["code"] as? String }
    var errorField: String? { (json["error"] as? [String: Any])?["field"] as? String }
}

/// A daemon on the real servers with two API tokens (`ops` write, `viewer` read), a local provider and a seeded database.
struct APIHarness {
    static let writeToken = "w-" + UUID().uuidString
    static let readToken = "r-" + UUID().uuidString

    let kafka: EmbeddedKafka
    let provider: DevProvider
    let pg: PostgresClient
    let port: Int
    let configuration: ReachConfiguration
    let stop: @Sendable () -> Void

    static func start(users: Int = 50, providerDelay: Duration = .zero, recordRequests: Bool = false, provider: DevProvider? = nil,
                      configure: (inout ReachConfiguration) -> Void = { _ in }) async throws -> APIHarness {
        let kafka = try embeddedKafka()
        let provider = provider ?? DevProvider(delay: providerDelay, recordRequests: recordRequests)
        let (providerPort, providerTask) = try await startProvider(provider)
        let url = try await seededDatabase(count: users)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.unique("api"))
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var c = try pipelineConfiguration(kafka: kafka, postgresURL: url, providerPort: providerPort,
                                          logPath: dir.appendingPathComponent("email.log").path)
        let writeFile = dir.appendingPathComponent("ops.token").path
        let readFile = dir.appendingPathComponent("viewer.token").path
        try (writeToken + "\n").write(toFile: writeFile, atomically: true, encoding: .utf8)
        try readToken.write(toFile: readFile, atomically: true, encoding: .utf8)
        c.auth.tokens = [TokenSettings(name: "ops", scope: "write", tokenFile: writeFile),
                         TokenSettings(name: "viewer", scope: "read", tokenFile: readFile)]
        c.http.tokenRatePerSecond = 0
        configure(&c)
        let (port, daemon) = try await startDaemon(c)
        return APIHarness(kafka: kafka, provider: provider, pg: PostgresClient(url: url, poolSize: 2), port: port, configuration: c,
                          stop: { daemon.cancel(); providerTask.cancel() })
    }

    func call(_ method: String, _ path: String, token: String? = APIHarness.writeToken, body: String? = nil,
              bytes: [UInt8]? = nil) async throws -> APIReplyData {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        request.httpMethod = method
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        if let body { request.httpBody = Data(body.utf8) }
        if let bytes { request.httpBody = Data(bytes) }
        if request.httpBody != nil { request.setValue("application/json", forHTTPHeaderField: "Content-Type") }
        let (data, response) = try await URLSession.shared.data(for: request)
        let http = response as! HTTPURLResponse
        var headers: [String: String] = [:]
        for (k, v) in http.allHeaderFields { headers[String(describing: k).lowercased()] = String(describing: v) }
        return APIReplyData(status: http.statusCode, body: String(decoding: data, as: UTF8.self), headers: headers)
    }
}
