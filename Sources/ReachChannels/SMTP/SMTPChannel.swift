import Foundation
import NIOCore
import NIOSSL
import ReachCore
import Synchronization

/// E-mail over SMTP (SPEC §6): EHLO, STARTTLS when offered, AUTH PLAIN or
/// LOGIN, PIPELINING when offered, a pool of open sessions reused across
/// batches. Title → `Subject`, body → text/plain (UTF-8, base64).
public final class SMTPChannel: Channel {
    public struct Settings: Sendable {
        public var host: String
        public var port: Int
        public var from: String
        public var username: String?
        public var password: String?
        /// `auto`: use STARTTLS when offered; `require`: refuse servers without it; `off`: never.
        public var startTLS: String
        public var verifyCertificates: Bool
        public var timeout: Duration

        public init(host: String, port: Int, from: String, username: String? = nil, password: String? = nil,
                    startTLS: String = "auto", verifyCertificates: Bool = true, timeout: Duration = .seconds(10)) {
            self.host = host
            self.port = port
            self.from = from
            self.username = username
            self.password = password
            self.startTLS = startTLS
            self.verifyCertificates = verifyCertificates
            self.timeout = timeout
        }
    }

    public let name: String
    let settings: Settings
    private let idle = Mutex<[Session]>([])
    private let tls: NIOSSLContext

    struct Session: Sendable {
        let connection: SMTPConnection
        let pipelining: Bool
    }

    public init(name: String, settings: Settings) throws {
        self.name = name
        self.settings = settings
        var tlsConfiguration = TLSConfiguration.makeClientConfiguration()
        if !settings.verifyCertificates { tlsConfiguration.certificateVerification = .none }
        self.tls = try NIOSSLContext(configuration: tlsConfiguration)
    }

    public func shutdown() async {
        for session in idle.withLock({ s in defer { s.removeAll() }; return s }) { await session.connection.close() }
    }

    public func send(_ batch: [OutboundMessage]) async -> [SendOutcome] {
        var outcomes: [SendOutcome] = []
        var session: Session
        do {
            session = try await takeSession()
        } catch {
            return Array(repeating: .retryable("smtp: \(error)"), count: batch.count)
        }
        for (index, message) in batch.enumerated() {
            do {
                outcomes.append(try await deliver(message, on: session))
            } catch {
                // The session is gone: what is left of the batch may be retried.
                await session.connection.close()
                outcomes.append(.retryable("smtp: \(error)"))
                outcomes += Array(repeating: .retryable("smtp: \(error)"), count: batch.count - index - 1)
                return outcomes
            }
        }
        if session.connection.isActive { idle.withLock { $0.append(session) } }
        return outcomes
    }

    private func takeSession() async throws -> Session {
        while let session = idle.withLock({ $0.popLast() }) {
            if session.connection.isActive { return session }
        }
        return try await open()
    }

    /// Connects and runs the greeting, EHLO, STARTTLS and AUTH.
    func open() async throws -> Session {
        let connection = try await SMTPConnection.connect(host: settings.host, port: settings.port, timeout: settings.timeout)
        do {
            let greeting = try await connection.reply()
            guard greeting.code == 220 else { throw SMTPConnection.Failure(description: "greeting \(greeting.code) \(greeting.text)") }
            var extensions = try await ehlo(connection)
            if extensions.keys.contains("STARTTLS") && settings.startTLS != "off" {
                let reply = try await connection.command("STARTTLS")
                guard reply.code == 220 else { throw SMTPConnection.Failure(description: "STARTTLS refused: \(reply.code) \(reply.text)") }
                try await connection.startTLS(context: tls, serverHostname: Self.isIPAddress(settings.host) ? nil : settings.host)
                extensions = try await ehlo(connection)
            } else if settings.startTLS == "require" {
                throw SMTPConnection.Failure(description: "the server does not offer STARTTLS and starttls is 'require'")
            }
            if let username = settings.username, let password = settings.password {
                // `auto` means TLS when offered; a server (or a middlebox stripping STARTTLS from
                // EHLO) that does not offer it must not get the credentials in clear text. Only
                // `starttls: off` says explicitly that plain-text AUTH is meant.
                if !connection.isEncrypted && settings.startTLS != "off" {
                    throw SMTPConnection.Failure(description:
                        "the server did not offer STARTTLS: refusing to send credentials in clear text (starttls: off allows it)")
                }
                try await authenticate(connection, username: username, password: password, mechanisms: extensions["AUTH"] ?? [])
            }
            return Session(connection: connection, pipelining: extensions.keys.contains("PIPELINING"))
        } catch {
            await connection.close()
            throw error
        }
    }

    private func ehlo(_ connection: SMTPConnection) async throws -> [String: [String]] {
        let reply = try await connection.command("EHLO \(Self.localName)")
        guard reply.code == 250 else { throw SMTPConnection.Failure(description: "EHLO refused: \(reply.code) \(reply.text)") }
        var extensions: [String: [String]] = [:]
        for line in reply.lines.dropFirst() {
            let words = line.split(separator: " ").map { String($0).uppercased() }
            if let keyword = words.first { extensions[keyword] = Array(words.dropFirst()) }
        }
        return extensions
    }

    private func authenticate(_ connection: SMTPConnection, username: String, password: String, mechanisms: [String]) async throws {
        let reply: SMTPConnection.Reply
        if mechanisms.contains("PLAIN") || !mechanisms.contains("LOGIN") {
            let token = Data("\u{0}\(username)\u{0}\(password)".utf8).base64EncodedString()
            reply = try await connection.command("AUTH PLAIN \(token)")
        } else {
            let start = try await connection.command("AUTH LOGIN")
            guard start.code == 334 else { throw SMTPConnection.Failure(description: "AUTH LOGIN refused: \(start.code)") }
            let user = try await connection.command(Data(username.utf8).base64EncodedString())
            guard user.code == 334 else { throw SMTPConnection.Failure(description: "AUTH LOGIN refused the user name: \(user.code)") }
            reply = try await connection.command(Data(password.utf8).base64EncodedString())
        }
        // Never echo credentials: the reply code says enough.
        guard reply.code == 235 else { throw SMTPConnection.Failure(description: "authentication failed (\(reply.code))") }
    }

    /// One message: MAIL, RCPT, DATA (pipelined when offered), then the content.
    func deliver(_ message: OutboundMessage, on session: Session) async throws -> SendOutcome {
        guard Self.isSafeAddress(message.to) else { return .permanent("invalid e-mail address") }
        let connection = session.connection
        let from = Self.address(settings.from)
        var replies: [SMTPConnection.Reply] = []
        if session.pipelining {
            try await connection.write("MAIL FROM:<\(from)>\r\nRCPT TO:<\(message.to)>\r\nDATA\r\n")
            for _ in 0..<3 { replies.append(try await connection.reply()) }
        } else {
            replies.append(try await connection.command("MAIL FROM:<\(from)>"))
            if replies[0].isPositive { replies.append(try await connection.command("RCPT TO:<\(message.to)>")) }
            if replies.last!.isPositive { replies.append(try await connection.command("DATA")) }
        }
        if let refused = replies.first(where: { !$0.isPositive }) {
            if replies.count == 3, replies[2].code == 354 {
                // DATA was accepted although an earlier step failed: end it empty.
                _ = try await connection.command(".")
            }
            _ = try await connection.command("RSET")
            let text = "\(refused.code) \(Redaction.maskText(refused.text))"
            return (400..<500).contains(refused.code) ? .retryable(text) : .permanent(text)
        }
        let done = try await connection.command(content(message) + "\r\n.")
        if done.code == 250 { return .sent(done.text.isEmpty ? nil : String(done.text.prefix(200))) }
        let text = "\(done.code) \(Redaction.maskText(done.text))"
        return (400..<500).contains(done.code) ? .retryable(text) : .permanent(text)
    }

    func content(_ message: OutboundMessage) -> String {
        let body = Data(message.body.utf8).base64EncodedString(options: [.lineLength76Characters, .endLineWithCarriageReturn, .endLineWithLineFeed])
        let headers = [
            "From: \(Self.headerSafe(settings.from))",
            "To: <\(message.to)>",
            "Subject: \(Self.encodedWord(message.title))",
            "Date: \(Self.rfc5322Date(Date()))",
            "Message-ID: <\(message.messageID)@reachd>",
            "X-Reach-Message-ID: \(message.messageID)",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: base64",
        ]
        return headers.joined(separator: "\r\n") + "\r\n\r\n" + body
    }

    static let localName: String = {
        let host = ProcessInfo.processInfo.hostName
        return host.isEmpty || host.contains(" ") ? "reachd.localdomain" : host
    }()

    /// `CRM <crm@example.com>` → `crm@example.com`.
    static func address(_ text: String) -> String {
        if let open = text.lastIndex(of: "<"), let close = text.lastIndex(of: ">"), open < close {
            return String(text[text.index(after: open)..<close])
        }
        return text.trimmingCharacters(in: .whitespaces)
    }

    static func isSafeAddress(_ address: String) -> Bool {
        !address.isEmpty && address.contains("@") && !address.contains(where: { "\r\n<> ".contains($0) })
    }

    static func headerSafe(_ text: String) -> String {
        text.replacingOccurrences(of: "\r", with: " ").replacingOccurrences(of: "\n", with: " ")
    }

    /// RFC 2047 encoded word for non-ASCII subjects.
    static func encodedWord(_ text: String) -> String {
        let flat = headerSafe(text)
        if flat.allSatisfy({ $0.isASCII }) { return flat }
        return "=?UTF-8?B?\(Data(flat.utf8).base64EncodedString())?="
    }

    static func rfc5322Date(_ date: Date) -> String { HTTPDate.utc(date, "EEE, dd MMM yyyy HH:mm:ss '+0000'") }

    static func isIPAddress(_ host: String) -> Bool {
        host.allSatisfy { $0.isNumber || $0 == "." } || host.contains(":")
    }
}
