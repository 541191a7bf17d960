import Foundation

/// scripts/smtp_sink.py on a free port; records each accepted message as a JSON line.
public final class SMTPSink: @unchecked Sendable {
    public let port: Int
    public let log: String
    public let process: SpawnedProcess

    public init() async throws {
        port = try TestEnvironment.freePort()
        log = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.unique("smtp") + ".jsonl").path
        let script = TestEnvironment.packageRoot.appendingPathComponent("scripts/smtp_sink.py").path
        process = try spawn("python3", [script, "--port", "\(port)", "--log", log, "--user", "crm", "--password", "s3cret"])
        let process = self.process
        guard try await eventually(timeout: .seconds(20), { process.output.contains("ready") }) else {
            throw ProcessFailure(command: "smtp_sink.py", status: -1, output: process.output)
        }
    }

    public var messages: [[String: Any]] {
        ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    deinit {
        process.signal(SIGKILL)
        _ = process.waitBlocking()
    }
}

