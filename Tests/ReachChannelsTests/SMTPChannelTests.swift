import Foundation
import ReachChannels
import ReachCore
import Testing
import TestSupport

func message(_ user: String, to: String, title: String = "Hello", body: String = "Body") -> OutboundMessage {
    OutboundMessage(messageID: MessageID.make(campaignID: "smtp", userID: user), campaignID: "smtp", userID: user,
                    channel: "email", to: to, title: title, body: body)
}

@Suite("e-mail over real SMTP (aiosmtpd): STARTTLS, AUTH, pipelining, pooled sessions")
struct SMTPChannelTests {
    func channel(_ sink: SMTPSink, password: String = "s3cret", startTLS: String = "auto") throws -> SMTPChannel {
        try SMTPChannel(name: "email", settings: .init(host: "127.0.0.1", port: sink.port, from: "CRM <crm@example.com>",
                                                        username: "crm", password: password, startTLS: startTLS,
                                                        verifyCertificates: false, timeout: .seconds(5)))
    }

    @Test("a batch is delivered over TLS after AUTH, each message once, subject and body intact")
    func deliversBatch() async throws {
        let sink = try await SMTPSink()
        let email = try channel(sink)
        let batch = [
            message("u1", to: "alice@example.com", title: "Hi Alice", body: "Your coupon SPRING10"),
            message("u2", to: "bob@example.com", title: "春季促销 🎉", body: "Línea uno\nline two\n.starts with a dot"),
            message("u3", to: "carol@example.com"),
        ]
        let outcomes = await email.send(batch)
        #expect(outcomes.map(\.status) == [.sent, .sent, .sent], "\(outcomes)")
        // A second batch reuses the pooled session.
        #expect(await email.send([message("u4", to: "dave@example.com")]).map(\.status) == [.sent])
        await email.shutdown()

        let received = sink.messages
        #expect(received.count == 4)
        #expect(received.allSatisfy { $0["tls"] as? Bool == true && $0["authenticated"] as? Bool == true })
        #expect(received.map { ($0["rcpt_tos"] as? [String])?.first ?? "" } == ["alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com"])
        #expect(received[1]["subject"] as? String == "春季促销 🎉")
        #expect((received[1]["body"] as? String)?.contains(".starts with a dot") == true)
        #expect(received[0]["mail_from"] as? String == "crm@example.com")
        #expect(received[0]["message_id"] as? String == batch[0].messageID)
    }

    // aiosmtpd answers a failed AUTH slowly (or drops the session), so the exact error varies.
    @Test("wrong credentials fail the batch without delivering anything and without echoing the password")
    func badPassword() async throws {
        let sink = try await SMTPSink()
        let email = try channel(sink, password: "wrong-pass")
        let outcomes = await email.send([message("u1", to: "alice@example.com")])
        #expect(outcomes.count == 1 && outcomes[0].status != .sent)
        #expect(!(outcomes[0].error ?? "").contains("wrong-pass"))
        #expect(sink.messages.isEmpty)
    }

    @Test("a header-injection address is refused permanently; the rest of the batch still goes")
    func refusesInjection() async throws {
        let sink = try await SMTPSink()
        let email = try channel(sink)
        let outcomes = await email.send([message("u1", to: "x@example.com>\r\nRCPT TO:<y@example.com"), message("u2", to: "ok@example.com")])
        #expect(outcomes.map(\.status) == [.permanent, .sent])
        #expect(sink.messages.count == 1)
        await email.shutdown()
    }

    @Test("no server: every message is retryable")
    func unreachable() async throws {
        let port = try TestEnvironment.freePort()
        let email = try SMTPChannel(name: "email", settings: .init(host: "127.0.0.1", port: port, from: "a@b.co", timeout: .seconds(2)))
        let outcomes = await email.send([message("u1", to: "a@example.com"), message("u2", to: "b@example.com")])
        #expect(outcomes.map(\.status) == [.retryable, .retryable])
    }
}

/// scripts/smtp_faults.py in one of its modes; what it saw, as JSON events.
final class FaultySMTPServer: @unchecked Sendable {
    let port: Int
    let process: SpawnedProcess

    init(_ mode: String) async throws {
        port = try TestEnvironment.freePort()
        let script = TestEnvironment.packageRoot.appendingPathComponent("scripts/smtp_faults.py").path
        process = try spawn("python3", [script, "--port", "\(port)", "--mode", mode])
        let process = self.process
        guard try await eventually(timeout: .seconds(20), { process.output.contains("ready") }) else {
            throw ProcessFailure(command: "smtp_faults.py", status: -1, output: process.output)
        }
    }

    var events: [[String: Any]] {
        process.output.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    func saw(_ event: String) -> [[String: Any]] { events.filter { $0["event"] as? String == event } }

    deinit {
        process.signal(SIGKILL)
        _ = process.waitBlocking()
    }
}

@Suite("e-mail over SMTP servers that misbehave: stripped STARTTLS, injected plain text, huge replies, a drop in DATA")
struct SMTPFaultTests {
    func channel(_ server: FaultySMTPServer, startTLS: String = "auto", credentials: Bool = true) throws -> SMTPChannel {
        try SMTPChannel(name: "email", settings: .init(host: "127.0.0.1", port: server.port, from: "CRM <crm@example.com>",
                                                        username: credentials ? "crm" : nil, password: credentials ? "s3cret" : nil,
                                                        startTLS: startTLS, verifyCertificates: false, timeout: .seconds(5)))
    }

    @Test("STARTTLS stripped: with credentials and starttls auto, AUTH is never sent in clear text and nothing is delivered; starttls off allows it")
    func strippedStartTLS() async throws {
        let server = try await FaultySMTPServer("strip-starttls")
        let email = try channel(server)
        let outcomes = await email.send([message("u1", to: "alice@example.com")])
        await email.shutdown()
        #expect(outcomes.map(\.status) == [.retryable], "\(outcomes)")
        #expect(outcomes.first?.error?.contains("clear text") == true, "\(outcomes)")
        #expect(server.saw("auth").isEmpty, "AUTH went out in clear text: \(server.events)")
        #expect(server.saw("message").isEmpty)

        // Said explicitly: plain-text AUTH is what is meant.
        let plain = try channel(server, startTLS: "off")
        #expect(await plain.send([message("u2", to: "bob@example.com")]).map(\.status) == [.sent])
        await plain.shutdown()
        #expect(server.saw("auth").count == 1 && server.saw("message").count == 1, "\(server.events)")
    }

    @Test("plain text the server sent after its 220 to STARTTLS is thrown away: the forged EHLO reply is not read as the real one")
    func injectionAfterStartTLS() async throws {
        let server = try await FaultySMTPServer("inject")
        let email = try channel(server)
        let outcomes = await email.send([message("u1", to: "alice@example.com")])
        await email.shutdown()
        #expect(outcomes.map(\.status) == [.sent], "\(outcomes) \(server.events)")
        #expect(server.saw("auth").allSatisfy { $0["tls"] as? Bool == true } && server.saw("auth").count == 1, "\(server.events)")
        #expect(server.saw("message").first?["tls"] as? Bool == true, "\(server.events)")
    }

    @Test("a 100 000-line reply ends the session with a bounded error instead of being collected")
    func hugeReply() async throws {
        let server = try await FaultySMTPServer("huge-reply")
        let email = try channel(server, credentials: false)
        let outcomes = await email.send([message("u1", to: "alice@example.com")])
        await email.shutdown()
        #expect(outcomes.map(\.status) == [.retryable], "\(outcomes)")
        #expect(outcomes.first?.error?.contains("longer than") == true, "\(outcomes)")
    }

    @Test("a connection dropped in the middle of DATA leaves the message retryable (same message id on the retry), never sent")
    func dropInData() async throws {
        let server = try await FaultySMTPServer("drop-in-data")
        let email = try channel(server, credentials: false)
        let outcomes = await email.send([message("u1", to: "alice@example.com"), message("u2", to: "bob@example.com")])
        await email.shutdown()
        #expect(outcomes.allSatisfy { $0.status == .retryable }, "\(outcomes)")
        #expect(server.saw("dropped in DATA").count >= 1 && server.saw("message").isEmpty)
    }
}
