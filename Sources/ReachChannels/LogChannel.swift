import Foundation
import ReachCore

/// `provider: log`: appends each send as a JSON line to a file (dry runs, the
/// demo). Addresses are masked: the file is for looking, not for delivery.
public final class LogChannel: Channel, @unchecked Sendable {
    public let name: String
    private let handle: FileHandle
    private let lock = NSLock()

    public init(name: String, path: String) throws {
        self.name = name
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        if !FileManager.default.fileExists(atPath: path) {
            _ = FileManager.default.createFile(atPath: path, contents: nil)
        }
        handle = try FileHandle(forWritingTo: url)
        try handle.seekToEnd()
    }

    deinit { try? handle.close() }

    public func send(_ batch: [OutboundMessage]) async -> [SendOutcome] {
        let text = batch.map { $0.json(maskAddress: true) + "\n" }.joined()
        do {
            try lock.withLock { try handle.write(contentsOf: Data(text.utf8)) }
            return Array(repeating: .sent(), count: batch.count)
        } catch {
            return Array(repeating: .retryable("log file: \(error)"), count: batch.count)
        }
    }
}
