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
