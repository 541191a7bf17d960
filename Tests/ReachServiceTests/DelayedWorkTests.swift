@testable import ReachService
import Testing

@Suite("DelayedWork: one type for every delay-queue item, in the wire form items were always written in")
struct DelayedWorkTests {
    @Test("the payloads already waiting in Redis decode to their kind")
    func wireForms() {
        guard case .campaignStart? = DelayedWork(payload: #"{"kind":"campaign_start"}"#) else { Issue.record("campaign_start"); return }
        guard case .cronRun? = DelayedWork(payload: #"{"kind":"cron_run"}"#) else { Issue.record("cron_run"); return }
        guard case .triggerSend(let delayed)? = DelayedWork(payload: #"{"kind":"trigger","rule_id":"paid","event":"{\"event_id\":\"e1\"}"}"#) else {
            Issue.record("trigger"); return
        }
        #expect(delayed.rule_id == "paid" && delayed.event == #"{"event_id":"e1"}"#)
        let retryText = #"{"kind":"retry","campaign_id":"c","user_id":"u","channel":"sms","attempts":2}"#
        guard case .retry(let retry)? = DelayedWork(payload: retryText) else { Issue.record("retry"); return }
        #expect(retry.campaign_id == "c" && retry.user_id == "u" && retry.channel == "sms" && retry.attempts == 2 && retry.triggerSend == nil)
    }

    @Test("a retry of a trigger send carries its rule and event; what is written reads back the same")
    func roundTrip() {
        let context = TriggerSender.Delayed(rule_id: "r", event: #"{"event_id":"e"}"#)
        let retry = DelayedWork.Retry(campaign_id: "t:r:e", user_id: "u", channel: "push", attempts: 0, trigger: context.json)
        guard case .retry(let back)? = DelayedWork(payload: DelayedWork.retry(retry).payload) else { Issue.record("retry"); return }
        #expect(back.triggerSend?.rule_id == "r" && back.triggerSend?.event == context.event && back.attempts == 0)
        guard case .campaignStart? = DelayedWork(payload: DelayedWork.campaignStart.payload) else { Issue.record("start"); return }
    }

    @Test("anything else is not understood (the scheduler logs and drops it)")
    func unknown() {
        for text in ["", "{}", #"{"kind":"nope"}"#, #"{"kind":"retry"}"#, #"{"kind":"trigger","rule_id":1}"#, "[1]"] {
            #expect(DelayedWork(payload: text) == nil, "\(text)")
        }
    }
}
