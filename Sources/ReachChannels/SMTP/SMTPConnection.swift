import NIOCore
import NIOPosix
import NIOSSL
import ReachCore
import Synchronization

/// One SMTP session over NIO: line-based replies, commands written as text,
/// and STARTTLS by inserting a TLS handler in front of the line decoder.
final class SMTPConnection: Sendable {
    struct Reply: Sendable {
        let code: Int
        let lines: [String]
        var text: String { lines.joined(separator: " ") }
        var isPositive: Bool { (200..<400).contains(code) }
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// A reply may have at most this many lines, and this many bytes in all.
    static let maxReplyLines = 512
    static let maxReplyBytes = 64 * 1024

    let channel: any NIOCore.Channel
    private let lines: LineQueue
    private let tap: LineDecoderTap
    let timeout: Duration
    /// Whether the session runs over TLS (after STARTTLS).
    private let encrypted = Atomic<Bool>(false)
    var isEncrypted: Bool { encrypted.load(ordering: .relaxed) }

    private init(channel: any NIOCore.Channel, lines: LineQueue, tap: LineDecoderTap, timeout: Duration) {
        self.channel = channel
        self.lines = lines
        self.tap = tap
        self.timeout = timeout
    }

    static func connect(host: String, port: Int, timeout: Duration) async throws -> SMTPConnection {
        let lines = LineQueue()
        let tap = LineDecoderTap()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.milliseconds(timeout.milliseconds))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(LineDecoder(tap: tap)))
                    try channel.pipeline.syncOperations.addHandler(LineCollector(queue: lines))
                }
            }
            .connect(host: host, port: port).get()
        return SMTPConnection(channel: channel, lines: lines, tap: tap, timeout: timeout)
    }

    /// Reads one (possibly multi-line) reply: `250-…` lines continue, `250 …` ends it.
    /// A reply longer than `maxReplyLines` lines or `maxReplyBytes` bytes ends the session.
    func reply() async throws -> Reply {
        var collected: [String] = []
        var bytes = 0
        while true {
            let line = try await lines.next(timeout: timeout)
            guard line.count >= 3, let code = Int(line.prefix(3)) else {
                throw Failure(description: "malformed SMTP reply")
            }
            bytes += line.utf8.count
            guard collected.count < Self.maxReplyLines, bytes <= Self.maxReplyBytes else {
                throw Failure(description: "SMTP reply longer than \(Self.maxReplyLines) lines or \(Self.maxReplyBytes) bytes")
            }
            collected.append(String(line.dropFirst(4)))
            if line.count == 3 || line[line.index(line.startIndex, offsetBy: 3)] != "-" {
                return Reply(code: code, lines: collected)
            }
        }
    }

    func write(_ text: String) async throws {
        try await channel.writeAndFlush(ByteBuffer(string: text)).get()
    }

    /// Sends one command line and reads its reply.
    func command(_ line: String) async throws -> Reply {
        try await write(line + "\r\n")
        return try await reply()
    }

    /// Puts TLS in front of the line decoder. Whatever the server sent in plain text after its
    /// `220` to STARTTLS (a man in the middle injecting replies, CVE-2011-0411 style) is thrown
    /// away: the lines already decoded and the bytes of a line not yet ended. Both are dropped on
    /// the event loop in the same step that inserts the TLS handler, so every byte after it is TLS.
    /// Returns how many plain-text bytes were dropped.
    @discardableResult
    func startTLS(context: NIOSSLContext, serverHostname: String?) async throws -> Int {
        let handler = try NIOSSLClientHandler(context: context, serverHostname: serverHostname)
        let (lines, tap, channel) = (self.lines, self.tap, self.channel)
        let dropped = try await channel.eventLoop.submit {
            try channel.pipeline.syncOperations.addHandler(handler, position: .first)
            return tap.discardLeftover() + lines.discardPending()
        }.get()
        encrypted.store(true, ordering: .relaxed)
        return dropped
    }

    func close() async {
        if channel.isActive { _ = try? await command("QUIT") }
        try? await channel.close().get()
    }

    var isActive: Bool { channel.isActive }
}

/// What the line decoder holds that is not a line yet, and how much of it to skip: STARTTLS
/// drops the plain-text bytes still buffered when TLS begins. Touched only on the event loop.
final class LineDecoderTap: Sendable {
    private let state = Mutex<(leftover: Int, skip: Int)>((0, 0))

    func buffered(_ bytes: Int) { state.withLock { $0.leftover = bytes } }

    /// Marks every byte buffered now to be skipped; returns how many.
    func discardLeftover() -> Int {
        state.withLock {
            $0.skip = $0.leftover
            return $0.leftover
        }
    }

    func takeSkip() -> Int {
        state.withLock { s in
            defer { s.skip = 0 }
            return s.skip
        }
    }
}

/// Splits the stream at LF, dropping the line ending (CRLF or LF).
struct LineDecoder: ByteToMessageDecoder {
    typealias InboundOut = String
    let tap: LineDecoderTap

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        let skip = tap.takeSkip()
        if skip > 0 { buffer.moveReaderIndex(forwardBy: min(skip, buffer.readableBytes)) }
        guard let newline = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else {
            if buffer.readableBytes > 64 * 1024 { throw SMTPConnection.Failure(description: "SMTP reply line too long") }
            tap.buffered(buffer.readableBytes)
            return .needMoreData
        }
        let length = newline - buffer.readerIndex
        var line = buffer.readString(length: length) ?? ""
        buffer.moveReaderIndex(forwardBy: 1)
        if line.hasSuffix("\r") { line.removeLast() }
        tap.buffered(buffer.readableBytes)
        context.fireChannelRead(wrapInboundOut(line))
        return .continue
    }
}

final class LineCollector: ChannelInboundHandler, Sendable {
    typealias InboundIn = String
    let queue: LineQueue

    init(queue: LineQueue) { self.queue = queue }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        queue.push(unwrapInboundIn(data))
    }

    func channelInactive(context: ChannelHandlerContext) {
        queue.fail(SMTPConnection.Failure(description: "the SMTP server closed the connection"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        queue.fail(SMTPConnection.Failure(description: "SMTP connection error: \(error)"))
        context.close(promise: nil)
    }
}

/// Lines received and not yet read, and at most one reader waiting for the next.
final class LineQueue: Sendable {
    private struct State {
        var lines: [String] = []
        var failure: (any Error)?
        var waiter: (id: UInt64, continuation: CheckedContinuation<String, any Error>)?
        var nextID: UInt64 = 0
    }

    private let state = Mutex(State())

    func push(_ line: String) {
        let waiter = state.withLock { s -> CheckedContinuation<String, any Error>? in
            if let w = s.waiter {
                s.waiter = nil
                return w.continuation
            }
            s.lines.append(line)
            return nil
        }
        waiter?.resume(returning: line)
    }

    /// Drops the lines received and not read yet; returns their size in bytes.
    func discardPending() -> Int {
        state.withLock { s in
            defer { s.lines.removeAll() }
            return s.lines.reduce(0) { $0 + $1.utf8.count + 2 }
        }
    }

    func fail(_ error: any Error) {
        let waiter = state.withLock { s -> CheckedContinuation<String, any Error>? in
            if s.failure == nil { s.failure = error }
            defer { s.waiter = nil }
            return s.waiter?.continuation
        }
        waiter?.resume(throwing: error)
    }

    func next(timeout: Duration) async throws -> String {
        let id = state.withLock { s -> UInt64 in
            s.nextID += 1
            return s.nextID
        }
        let timer = Task { [weak self] in
            try await Task.sleep(for: timeout)
            self?.expire(id)
        }
        defer { timer.cancel() }
        return try await withCheckedThrowingContinuation { continuation in
            let immediate: Result<String, any Error>? = state.withLock { s in
                if !s.lines.isEmpty { return .success(s.lines.removeFirst()) }
                if let failure = s.failure { return .failure(failure) }
                s.waiter = (id, continuation)
                return nil
            }
            if let immediate { continuation.resume(with: immediate) }
        }
    }

    private func expire(_ id: UInt64) {
        let waiter = state.withLock { s -> CheckedContinuation<String, any Error>? in
            guard s.waiter?.id == id else { return nil }
            defer { s.waiter = nil }
            return s.waiter?.continuation
        }
        waiter?.resume(throwing: SMTPConnection.Failure(description: "the SMTP server did not answer in time"))
    }
}
