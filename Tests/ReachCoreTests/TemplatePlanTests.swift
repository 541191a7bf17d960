@testable import ReachCore
import Testing

/// The compiled plan against swift-mustache, the reference: random templates
/// (plain and odd tags, sigils, whitespace, stray braces, multi-byte text) and
/// random recipients (missing fields, every JSON type in `attrs` and `data`)
/// must render the same both ways.
@Suite("template plan: direct field lookups render what swift-mustache renders")
struct TemplatePlanTests {
    /// SplitMix64, seeded: a failure names its seed and reproduces.
    struct Seeded: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static let names = [
        "name", "user_id", "phone", "email", "push_token", "locale", "timezone", "attrs.level", "attrs.city", "attrs.flag",
        "attrs.none", "attrs.list", "attrs.nested.deep", "attrs.nested", "attrs.nested.deep.deeper", "attrs.missing.x", "attrs",
        "data.coupon", "data.n", "data.obj.k", "data", "properties.p", "properties", "unknown", "name.first", "attrs.city.x",
        ".", ".name", "name.", "a..b", "attrs.lev-el", "attrs.le_vel", "na me", "name?", "upper(name)", "",
    ]
    static let texts = ["Hi ", " ", "\n", "\r\n", "{", "}", "}}", "{ {", "é", "中文", "👋🏽", ":", ".", "&", "<b>", "\"q\"", "\\", "\t", "a", "#", "!", "\u{0}", "\u{FEFF}", "\u{7F}"]

    static func tag(_ name: String, _ rng: inout Seeded) -> String {
        let pad = ["", " ", "  ", "\t", "\n"].randomElement(using: &rng)!
        let pad2 = ["", " ", "\t", "\n"].randomElement(using: &rng)!
        switch Int.random(in: 0..<12, using: &rng) {
        case 0: return "{{{\(pad)\(name)\(pad2)}}}"
        case 1: return "{{&\(pad)\(name)\(pad2)}}"
        case 2: return "{{#\(name)}}x{{/\(name)}}"
        case 3: return "{{^\(name)}}none{{/\(name)}}"
        case 4: return "{{! a comment }}"
        case 5: return "{{{\(name)}}"
        default: return "{{\(pad)\(name)\(pad2)}}"
        }
    }

    static func template(_ rng: inout Seeded) -> String {
        (0..<Int.random(in: 0...8, using: &rng)).map { _ in
            Bool.random(using: &rng) ? texts.randomElement(using: &rng)! : tag(names.randomElement(using: &rng)!, &rng)
        }.joined()
    }

    static func value(_ rng: inout Seeded, depth: Int = 0) -> JSONValue {
        switch Int.random(in: 0..<(depth > 1 ? 4 : 6), using: &rng) {
        case 0: .string(["Paris", "", "a&b", "中", "{{name}}"].randomElement(using: &rng)!)
        case 1: .number([3, 0, -2.5, 1e20, 12345678901].randomElement(using: &rng)!)
        case 2: .bool(Bool.random(using: &rng))
        case 3: .null
        case 4: .array([.string("x"), .number(1)])
        default: .object(["deep": value(&rng, depth: depth + 1), "k": .string("v")])
        }
    }

    static func recipient(_ rng: inout Seeded) -> Recipient {
        func maybe(_ s: String) -> String? { Int.random(in: 0..<4, using: &rng) == 0 ? nil : s }
        var attrs: [String: JSONValue] = [:]
        for key in ["level", "city", "flag", "none", "list", "nested"] where Bool.random(using: &rng) {
            attrs[key] = value(&rng)
        }
        return Recipient(userID: "u\(Int.random(in: 0..<1000, using: &rng))", name: maybe("Ann <&>"), phone: maybe("13800000001"),
                         email: maybe("a@example.com"), pushToken: maybe("tok"), timezone: maybe("UTC"), locale: maybe("fr"), attrs: attrs)
    }

    @Test("10 000 random templates × recipients: the plan and swift-mustache agree", arguments: [1, 2, 3, 4])
    func agreesWithMustache(seed: UInt64) throws {
        var rng = Seeded(state: seed)
        var compiled = 0
        var planned = 0
        var rendered = 0
        for round in 0..<2_500 {
            let source = Self.template(&rng)
            guard let template = try? MessageTemplate(title: nil, body: source) else { continue }
            compiled += 1
            if template.bodyHasPlan { planned += 1 }
            let data: [String: JSONValue] = Bool.random(using: &rng)
                ? ["coupon": Self.value(&rng), "n": .number(7), "obj": .object(["k": Self.value(&rng)])] : [:]
            let properties: [String: JSONValue]? = Bool.random(using: &rng) ? ["p": Self.value(&rng)] : nil
            for _ in 0..<2 {
                let r = Self.recipient(&rng)
                let fast = template.render(recipient: r, data: JSONScope(data), properties: properties.map(JSONScope.init))
                let reference = template.renderWithMustache(recipient: r, data: JSONScope(data), properties: properties.map(JSONScope.init))
                #expect(fast.body == reference.body, "seed \(seed) round \(round): \(source.debugDescription) for \(r)")
                if template.bodyHasPlan, TemplatePlan.compile(source)?.render(recipient: r, data: data, properties: properties) != nil {
                    rendered += 1
                }
            }
        }
        // The comparison means something only if the plan did most of the rendering.
        #expect(planned * 3 > compiled, "only \(planned) of \(compiled) templates had a plan")
        #expect(rendered * 4 > compiled * 2, "only \(rendered) renderings of \(compiled * 2) went through the plan")
    }

    @Test("the plan covers text and variables only; sections, comments, partials and transforms fall back")
    func coverage() {
        #expect(TemplatePlan.compile("Hi {{name}}, level {{ attrs.level }} {{{data.url}}} {{& phone}}") != nil)
        #expect(TemplatePlan.compile("no tags at all") != nil)
        for source in ["{{#attrs.vip}}VIP{{/attrs.vip}}", "{{^name}}friend{{/name}}", "{{! note }}", "{{> partial}}", "{{.}}",
                       "{{uppercased(name)}}", "{{=<% %>=}}", "{{$block}}x{{/block}}", "{{% CONTENT_TYPE: HTML}}"] {
            #expect(TemplatePlan.compile(source) == nil, "\(source)")
        }
    }

    @Test("a template reading no recipient field renders once per campaign, and still right")
    func constantTemplates() throws {
        let task = CampaignTask(campaignID: "c1", name: nil, segment: .id("s"), weights: [.init("sms", 1), .init("push", 1)], fallback: [],
                                template: TemplateSpec(title: "Sale", body: "{{data.coupon}} today",
                                                       channels: ["push": .init(title: nil, body: "Hi {{name}}")]),
                                data: ["coupon": .string("SPRING10")], schedule: .now, expiresAt: nil, quietHours: true)
        let planner = try DeliveryPlanner(task: task, addressFields: [:])
        #expect(planner.constantChannels == ["sms"])
        let ann = Recipient(userID: "u1", name: "Ann", phone: "13800000001", pushToken: "t")
        #expect(planner.message(for: ann, channel: "sms")?.body == "SPRING10 today")
        #expect(planner.message(for: ann, channel: "sms")?.title == "Sale")
        #expect(planner.message(for: ann, channel: "push")?.body == "Hi Ann")
    }
}
