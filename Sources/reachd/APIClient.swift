import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import ReachCore

/// `--server`, the token and `--json`: how operator commands reach the API,
/// the way kubectl reaches its server.
struct APIOptions: ParsableArguments {
    @Option(help: "reachd's HTTP address (default: REACH_SERVER, else http://127.0.0.1:8080).")
    var server: String?
    @Option(help: "A file holding the API token (default: the REACH_TOKEN environment variable).")
    var tokenFile: String?
    @Flag(help: "Print the API's JSON instead of a table.")
    var json = false

    func client() throws -> APIClient {
        let environment = ProcessInfo.processInfo.environment
        var token = environment["REACH_TOKEN"]
        if let tokenFile {
            guard let data = FileManager.default.contents(atPath: tokenFile) else { throw CLIError("cannot read --token-file \(tokenFile)") }
            token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        guard let token, !token.isEmpty else { throw CLIError("no API token: set REACH_TOKEN or pass --token-file") }
        var base = server ?? environment["REACH_SERVER"] ?? "http://127.0.0.1:8080"
        while base.hasSuffix("/") { base.removeLast() }
        return APIClient(base: base, token: token)
    }
}

/// A failure the CLI reports as one line on stderr with exit status 1.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}

struct APIClient: Sendable {
    let base: String
    let token: String

    /// Calls the API; a non-2xx answer becomes a `CLIError` carrying the API's own message.
    func call(_ method: HTTPMethod, _ path: String, query: [(String, String?)] = [], body: [UInt8]? = nil) async throws -> JSONValue {
        var url = base + path
        let pairs = query.compactMap { key, value in value.map { "\(key)=\(Self.escape($0))" } }
        if !pairs.isEmpty { url += "?" + pairs.joined(separator: "&") }
        var request = HTTPClientRequest(url: url)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let response: HTTPClientResponse
        let bytes: ByteBuffer
        do {
            response = try await Self.http.execute(request, timeout: .seconds(60))
            bytes = try await response.body.collect(upTo: 64 << 20)
        } catch {
            throw CLIError("cannot reach \(base): \(error)")
        }
        let json = (try? JSONParser.parse(Array(buffer: bytes))) ?? .null
        guard (200..<300).contains(Int(response.status.code)) else {
            let error = json["error"]
            let message = error?["message"]?.string ?? String(buffer: bytes)
            let code = error?["code"]?.string.map { " \($0)" } ?? ""
            throw CLIError("\(message) (HTTP \(response.status.code)\(code))")
        }
        return json
    }

    /// Follows `next` until the last page (or `max` items).
    func all(_ path: String, query: [(String, String?)], max: Int) async throws -> [JSONValue] {
        var items: [JSONValue] = []
        var after: String?
        repeat {
            let page = try await call(.GET, path, query: query + [("limit", String(min(500, max - items.count))), ("after", after)])
            items += page["items"]?.array ?? []
            after = page["next"]?.string
        } while after != nil && items.count < max
        return items
    }

    /// A refused connection fails at once instead of being retried until the deadline (the pool's default).
    static let http: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout = .init(connect: .seconds(5), read: .seconds(60))
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    static func escape(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? s
    }

    static func pathPart(_ s: String) -> String { escape(s) }
}

/// Prints rows as aligned columns (the human default) or the JSON itself (`--json`).
enum Output {
    static func table(_ header: [String], _ rows: [[String]]) {
        var widths = header.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, c in i == cells.count - 1 ? c : c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                .joined(separator: "  ")
        }
        print(line(header))
        for row in rows { print(line(row)) }
    }

    static func json(_ value: JSONValue) { print(value.jsonText) }

    /// A cell: strings as they are, numbers without a trailing .0, null as -.
    static func cell(_ value: JSONValue?) -> String {
        switch value {
        case nil, .null?: "-"
        case .string(let s)?: s
        case .number(let n)?: n == n.rounded() && abs(n) < 1e15 ? String(Int(n)) : String(format: "%.1f", n)
        case .bool(let b)?: b ? "yes" : "no"
        case let other?: other.jsonText
        }
    }

    /// Reads a JSON file argument (`-` is standard input).
    static func readFile(_ file: String) throws -> [UInt8] {
        if file == "-" { return Array(FileHandle.standardInput.readDataToEndOfFile()) }
        guard let data = FileManager.default.contents(atPath: file) else { throw CLIError("cannot read \(file)") }
        return Array(data)
    }
}

/// Runs an operator command: a `CLIError` is printed as `reachd: <message>` and exits 1.
func operatorCommand(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as CLIError {
        FileHandle.standardError.write(Data("reachd: \(error.description)\n".utf8))
        throw ExitCode(1)
    }
}
