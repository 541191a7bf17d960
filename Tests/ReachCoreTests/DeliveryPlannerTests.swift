@testable import ReachCore
import Testing

@Suite("per-recipient decisions: opt-outs, addresses, fallback, rendering")
struct DeliveryPlannerTests {
    func task(channels: [ChannelRouter.Weight], fallback: [String] = [], title: String? = "Hi {{name}}",
              body: String = "{{name}}: {{data.coupon}} L{{attrs.level}} {{#attrs.tags}}[{{.}}]{{/attrs.tags}}",
              overrides: [String: TemplateSpec.Parts] = [:]) -> CampaignTask {
        CampaignTask(campaignID: "c1", name: nil, segment: .id("s"), weights: channels, fallback: fallback,
                     template: TemplateSpec(title: title, body: body, channels: overrides),
                     data: ["coupon": .string("SPRING10")], schedule: .now, expiresAt: nil, quietHours: true)
    }

    let alice = Recipient(userID: "u1", name: "Alice <&>", phone: "13800000001", email: "alice@example.com",
                          attrs: ["level": .number(3), "tags": .array([.string("vip"), .string("new")])])

    @Test("renders recipient fields, data.*, attrs.* (lists too) as plain text, no HTML escaping")
    func rendering() throws {
        let planner = try DeliveryPlanner(task: task(channels: [.init("sms", 1)]), addressFields: [:])
        guard case .send(let m) = planner.plan(alice) else { Issue.record("not sent"); return }
        #expect(m.channel == "sms" && m.to == "13800000001")
        #expect(m.title == "Hi Alice <&>")
        #expect(m.body == "Alice <&>: SPRING10 L3 [vip][new]")
        #expect(m.messageID == MessageID.make(campaignID: "c1", userID: "u1"))
    }

    @Test("a per-channel override replaces only the parts it sets")
    func overrides() throws {
        let t = task(channels: [.init("email", 1)], overrides: ["email": .init(title: "Gift for {{name}}", body: nil)])
        guard case .send(let m) = try DeliveryPlanner(task: t, addressFields: [:]).plan(alice) else { Issue.record("not sent"); return }
        #expect(m.title == "Gift for Alice <&>" && m.body.hasPrefix("Alice <&>: SPRING10"))
        #expect(m.to == "alice@example.com")
    }

    @Test("opt-outs and missing addresses fall back in order; nothing left is skipped with the right reason")
    func fallbackAndSkips() throws {
        let planner = try DeliveryPlanner(task: task(channels: [.init("sms", 1)], fallback: ["push", "email"]), addressFields: [:])
        var noPhone = alice
        noPhone.phone = nil
        guard case .send(let viaEmail) = planner.plan(noPhone) else { Issue.record("not sent"); return }
        #expect(viaEmail.channel == "email", "no phone, no push token: e-mail")
        var optedOut = alice
        optedOut.optedOut = ["sms"]
        guard case .send(let viaEmail2) = planner.plan(optedOut) else { Issue.record("not sent"); return }
        #expect(viaEmail2.channel == "email")
        var everything = alice
        everything.optedOut = ["*"]
        #expect(planner.plan(everything) == .skip(reason: .optedOut, channel: nil))
        let nobody = Recipient(userID: "u9")
        #expect(planner.plan(nobody) == .skip(reason: .noAddress, channel: nil))
    }

    @Test("a further attempt keeps its channel: no fallback; opted out or no address since is skipped on that channel")
    func furtherAttempt() throws {
        let planner = try DeliveryPlanner(task: task(channels: [.init("sms", 1)], fallback: ["email"]), addressFields: [:])
        guard case .send(let m) = planner.plan(alice, on: "sms") else { Issue.record("not sent"); return }
        #expect(m.channel == "sms" && m.to == "13800000001" && m.messageID == MessageID.make(campaignID: "c1", userID: "u1"))
        var optedOut = alice
        optedOut.optedOut = ["sms"]
        #expect(planner.plan(optedOut, on: "sms") == .skip(reason: .optedOut, channel: "sms"), "no fallback to e-mail on a retry")
        var noPhone = alice
        noPhone.phone = nil
        #expect(planner.plan(noPhone, on: "sms") == .skip(reason: .noAddress, channel: "sms"))
        #expect(planner.plan(alice, on: "push") == .skip(reason: .noAddress, channel: "push"), "a channel the task never had")
    }

    @Test("a channel may deliver to another field; in-app needs only the user id")
    func addressFields() throws {
        let planner = try DeliveryPlanner(task: task(channels: [.init("inapp", 1)]), addressFields: [:])
        guard case .send(let m) = planner.plan(Recipient(userID: "u5")) else { Issue.record("not sent"); return }
        #expect(m.to == "u5")
        let custom = try DeliveryPlanner(task: task(channels: [.init("wa", 1)]), addressFields: ["wa": .phone])
        guard case .send(let w) = custom.plan(alice) else { Issue.record("not sent"); return }
        #expect(w.to == "13800000001")
    }

    @Test("a broken template is a validation error naming where it is")
    func brokenTemplate() {
        #expect {
            _ = try DeliveryPlanner(task: task(channels: [.init("sms", 1)], body: "{{#open}} never closed"), addressFields: [:])
        } throws: { error in
            (error as? ValidationError)?.path == "template.body"
        }
    }
}
