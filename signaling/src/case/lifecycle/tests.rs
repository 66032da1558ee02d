//! Every transition of the lifecycle, every refused one, and a random walk that checks the
//! invariants after every step.

use super::*;

const APPROVER: i64 = 10;
const OTHER_APPROVER: i64 = 11;
const CHIEF: i64 = 20;
const OTHER_CHIEF: i64 = 21;
const NOW: u64 = 1_000;

fn result_paper() -> Option<ResultPaper> {
    Some(ResultPaper { id: 7, kind: Some(PaperKind::Result) })
}

fn in_call(approver: i64) -> CallFacts {
    CallFacts { live_approver: Some(approver), last_answerer: Some(approver) }
}

fn decide(outcome: Outcome, calls: CallFacts) -> Command {
    Command::Decide {
        outcome,
        note: "理由".into(),
        missing_items: if outcome == Outcome::Missing { vec!["户口本".into()] } else { Vec::new() },
        result_paper: match outcome {
            Outcome::Done => result_paper(),
            Outcome::Refused | Outcome::Missing | Outcome::Later => None,
        },
        calls,
        villager: true,
    }
}

fn finish() -> Command {
    Command::Finish { note: "办好了".into(), result_paper: ResultPaper { id: 8, kind: Some(PaperKind::Result) } }
}

fn approve() -> Command {
    Command::SignOff { decision: SignoffDecision::Approved, reason: None }
}

fn send_back() -> Command {
    Command::SignOff { decision: SignoffDecision::Returned, reason: Some("再核实".into()) }
}

/// Apply and check the invariants of the result.
fn step(s: &CaseState, actor: Actor, c: Command) -> Result<Transition, Refusal> {
    let t = apply(s, actor, c, NOW)?;
    check_invariants(&t.state).unwrap_or_else(|e| panic!("invariant broken: {e}\n{t:?}"));
    Ok(t)
}

fn state_in(status: Status, needs_signoff: bool) -> CaseState {
    // Reach each status the way a case does.
    let s = CaseState::new(needs_signoff);
    let s = match status {
        Status::Open => return s,
        Status::Missing => step(&s, Actor::Approver(APPROVER), decide(Outcome::Missing, in_call(APPROVER))),
        Status::Later => step(&s, Actor::Approver(APPROVER), decide(Outcome::Later, in_call(APPROVER))),
        Status::Done => step(&s, Actor::Approver(APPROVER), decide(Outcome::Done, in_call(APPROVER))),
        Status::Refused => step(&s, Actor::Approver(APPROVER), decide(Outcome::Refused, in_call(APPROVER))),
        Status::Signoff | Status::Returned => {
            let s = CaseState::new(true);
            step(&s, Actor::Approver(APPROVER), decide(Outcome::Done, in_call(APPROVER)))
        }
    }
    .unwrap()
    .state;
    let s = match (status, needs_signoff) {
        (Status::Done | Status::Refused, true) => step(&s, Actor::Chief(CHIEF), approve()).unwrap().state,
        (Status::Returned, _) => step(&s, Actor::Chief(CHIEF), send_back()).unwrap().state,
        _ => s,
    };
    assert_eq!(s.status, status);
    s
}

#[test]
fn decide_each_outcome_without_signoff() {
    let s = CaseState::new(false);
    for (outcome, status) in [
        (Outcome::Done, Status::Done),
        (Outcome::Missing, Status::Missing),
        (Outcome::Refused, Status::Refused),
        (Outcome::Later, Status::Later),
    ] {
        let t = step(&s, Actor::Approver(APPROVER), decide(outcome, in_call(APPROVER))).unwrap();
        assert_eq!(t.state.status, status);
        let d = t.state.decision.as_ref().unwrap();
        assert_eq!((d.outcome, d.by, d.at_ms), (outcome, APPROVER, NOW));
        assert_eq!(t.effects, vec![Effect::PushOutcome]);
        assert!(matches!(&t.events[..], [CaseEvent::Decided { pending_signoff: false, .. }]));
        assert!(t.events[0].village_visible());
    }
}

#[test]
fn decide_with_signoff_waits_for_the_chief() {
    let s = CaseState::new(true);
    for outcome in [Outcome::Done, Outcome::Refused] {
        let t = step(&s, Actor::Approver(APPROVER), decide(outcome, in_call(APPROVER))).unwrap();
        assert_eq!(t.state.status, Status::Signoff);
        assert_eq!(t.effects, vec![Effect::PushOutcome, Effect::RequestSignoff]);
        assert!(!t.events[0].village_visible());
    }
    // 现场开单 and 放心回家 are not signed off.
    for (outcome, status) in [(Outcome::Missing, Status::Missing), (Outcome::Later, Status::Later)] {
        let t = step(&s, Actor::Approver(APPROVER), decide(outcome, in_call(APPROVER))).unwrap();
        assert_eq!(t.state.status, status);
        assert_eq!(t.effects, vec![Effect::PushOutcome]);
    }
}

#[test]
fn no_decision_without_the_villager() {
    let s = CaseState::new(false);
    for outcome in Outcome::ALL {
        let mut c = decide(*outcome, in_call(APPROVER));
        if let Command::Decide { villager, .. } = &mut c {
            *villager = false;
        }
        assert_eq!(step(&s, Actor::Approver(APPROVER), c), Err(Refusal::VillagerRequired), "{outcome:?}");
    }
}

#[test]
fn a_decision_after_the_call_goes_to_the_inbox() {
    let s = CaseState::new(false);
    let dropped = CallFacts { live_approver: None, last_answerer: Some(APPROVER) };
    for outcome in Outcome::ALL {
        let t = step(&s, Actor::Approver(APPROVER), decide(*outcome, dropped)).unwrap();
        assert_eq!(t.effects, vec![Effect::DeliverToInbox, Effect::PushOutcome], "{outcome:?}");
        // In the call: the kiosk is told there and then.
        let t = step(&s, Actor::Approver(APPROVER), decide(*outcome, in_call(APPROVER))).unwrap();
        assert_eq!(t.effects, vec![Effect::PushOutcome], "{outcome:?}");
    }
    // Waiting for the chief: the inbox gets it once signed off.
    let t = step(&CaseState::new(true), Actor::Approver(APPROVER), decide(Outcome::Done, dropped)).unwrap();
    assert_eq!(t.effects, vec![Effect::PushOutcome, Effect::RequestSignoff]);
}

#[test]
fn who_decides() {
    let s = CaseState::new(false);
    let d = |calls| decide(Outcome::Refused, calls);
    // The approver in the live call, nobody else.
    assert!(step(&s, Actor::Approver(APPROVER), d(in_call(APPROVER))).is_ok());
    assert_eq!(step(&s, Actor::Approver(OTHER_APPROVER), d(in_call(APPROVER))), Err(Refusal::NotTheDecider));
    // After the call dropped: the approver who answered it.
    let dropped = CallFacts { live_approver: None, last_answerer: Some(APPROVER) };
    assert!(step(&s, Actor::Approver(APPROVER), d(dropped)).is_ok());
    assert_eq!(step(&s, Actor::Approver(OTHER_APPROVER), d(dropped)), Err(Refusal::NotTheDecider));
    // Never called: nobody.
    assert_eq!(step(&s, Actor::Approver(APPROVER), d(CallFacts::default())), Err(Refusal::NotTheDecider));
    // A returned case: any approver of the town.
    let returned = state_in(Status::Returned, true);
    let t = step(&returned, Actor::Approver(OTHER_APPROVER), d(CallFacts::default())).unwrap();
    assert_eq!((t.state.status, t.state.decision.unwrap().by), (Status::Signoff, OTHER_APPROVER));
    // Only approvers decide.
    for actor in [Actor::Kiosk, Actor::Chief(CHIEF), Actor::Supervisor(1)] {
        assert!(matches!(step(&s, actor, d(in_call(APPROVER))), Err(Refusal::Role(_))), "{actor:?}");
    }
}

#[test]
fn decisions_need_what_their_outcome_needs() {
    let s = CaseState::new(false);
    let a = Actor::Approver(APPROVER);
    let with = |outcome, missing: Vec<String>, note: &str, paper| Command::Decide {
        outcome,
        note: note.into(),
        missing_items: missing,
        result_paper: paper,
        calls: in_call(APPROVER),
        villager: true,
    };
    assert!(matches!(step(&s, a, with(Outcome::Done, vec![], "好", None)), Err(Refusal::Invalid(_))));
    assert!(matches!(step(&s, a, with(Outcome::Missing, vec![], "", None)), Err(Refusal::Invalid(_))));
    assert!(step(&s, a, with(Outcome::Missing, vec!["户口本".into()], "", None)).is_ok());
    assert!(step(&s, a, with(Outcome::Missing, vec![], "带齐材料再来", None)).is_ok());
    for outcome in [Outcome::Done, Outcome::Refused, Outcome::Later] {
        let items = vec!["户口本".to_string()];
        assert!(matches!(step(&s, a, with(outcome, items, "x", result_paper())), Err(Refusal::Invalid(_))));
    }
    for outcome in [Outcome::Missing, Outcome::Later] {
        assert!(matches!(step(&s, a, with(outcome, vec![], "x", result_paper())), Err(Refusal::Invalid(_))));
    }
    let scan = Some(ResultPaper { id: 3, kind: Some(PaperKind::Scan) });
    let foreign = Some(ResultPaper { id: 3, kind: None });
    for p in [scan, foreign] {
        assert!(matches!(step(&s, a, with(Outcome::Done, vec![], "x", p)), Err(Refusal::Invalid(_))));
        assert!(matches!(step(&s, a, with(Outcome::Refused, vec![], "x", p)), Err(Refusal::Invalid(_))));
    }
    // A refusal may carry its result document (a written decision).
    let t = step(&s, a, with(Outcome::Refused, vec![], "不符合条件", result_paper())).unwrap();
    assert_eq!(t.state.decision.unwrap().result_paper_id, Some(7));
}

#[test]
fn decide_only_on_open_or_returned() {
    let a = Actor::Approver(APPROVER);
    for status in [Status::Missing, Status::Later, Status::Signoff] {
        let s = state_in(status, true);
        assert!(matches!(step(&s, a, decide(Outcome::Done, in_call(APPROVER))), Err(Refusal::Status { .. })));
    }
    for status in [Status::Done, Status::Refused] {
        let s = state_in(status, false);
        assert_eq!(step(&s, a, decide(Outcome::Done, in_call(APPROVER))), Err(Refusal::Closed(status)));
    }
}

#[test]
fn finish_a_later_case() {
    for (needs, status, effects) in [
        (false, Status::Done, vec![Effect::DeliverToInbox, Effect::PushOutcome]),
        (true, Status::Signoff, vec![Effect::RequestSignoff]),
    ] {
        let s = state_in(Status::Later, needs);
        for actor in [Actor::Approver(OTHER_APPROVER), Actor::Chief(CHIEF)] {
            let t = step(&s, actor, finish()).unwrap();
            assert_eq!(t.state.status, status);
            let d = t.state.decision.as_ref().unwrap();
            assert_eq!((d.outcome, d.result_paper_id), (Outcome::Done, Some(8)));
            assert_eq!(t.effects, effects);
            assert_eq!(t.events[0].village_visible(), !needs);
        }
        for actor in [Actor::Kiosk, Actor::Supervisor(1)] {
            assert!(matches!(step(&s, actor, finish()), Err(Refusal::Role(_))));
        }
        let not_result = Command::Finish { note: "x".into(), result_paper: ResultPaper { id: 1, kind: None } };
        assert!(matches!(step(&s, Actor::Chief(CHIEF), not_result), Err(Refusal::Invalid(_))));
    }
    for status in [Status::Open, Status::Missing, Status::Signoff, Status::Returned, Status::Done, Status::Refused] {
        let s = state_in(status, true);
        assert!(matches!(step(&s, Actor::Chief(CHIEF), finish()), Err(Refusal::Status { .. })), "{status}");
    }
}

#[test]
fn signoff_approves_or_returns() {
    let s = state_in(Status::Signoff, true);
    let t = step(&s, Actor::Chief(CHIEF), approve()).unwrap();
    assert_eq!(t.state.status, Status::Done);
    assert_eq!(t.effects, vec![Effect::DeliverToInbox, Effect::PushOutcome]);
    assert!(matches!(&t.events[..], [CaseEvent::SignoffApproved { .. }, CaseEvent::OutcomeFinal { .. }]));
    assert_eq!(t.events.iter().map(CaseEvent::village_visible).collect::<Vec<_>>(), [false, true]);

    let t = step(&s, Actor::Chief(CHIEF), send_back()).unwrap();
    assert_eq!(t.state.status, Status::Returned);
    assert_eq!(t.effects, vec![Effect::TellReturned { decider: APPROVER, reason: "再核实".into() }]);
    let so = t.state.signoff.unwrap();
    assert_eq!((so.by, so.decision), (CHIEF, SignoffDecision::Returned));

    // A pending refusal becomes a final refusal.
    let refused = step(&CaseState::new(true), Actor::Approver(APPROVER), decide(Outcome::Refused, in_call(APPROVER)))
        .unwrap()
        .state;
    assert_eq!(step(&refused, Actor::Chief(CHIEF), approve()).unwrap().state.status, Status::Refused);

    // Returning needs a reason.
    let bare = Command::SignOff { decision: SignoffDecision::Returned, reason: None };
    assert!(matches!(step(&s, Actor::Chief(CHIEF), bare), Err(Refusal::Invalid(_))));
    // Only chiefs, only while waiting.
    for actor in [Actor::Kiosk, Actor::Approver(OTHER_APPROVER), Actor::Supervisor(1)] {
        assert!(matches!(step(&s, actor, approve()), Err(Refusal::Role(_))));
    }
    for status in [Status::Open, Status::Missing, Status::Later, Status::Returned, Status::Done, Status::Refused] {
        let s = state_in(status, true);
        assert!(matches!(step(&s, Actor::Chief(CHIEF), approve()), Err(Refusal::Status { .. })), "{status}");
    }
}

#[test]
fn signoff_is_never_by_the_decider() {
    // A chief finishes a 放心回家 case: he cannot approve or return it himself.
    let later = state_in(Status::Later, true);
    let mine = step(&later, Actor::Chief(CHIEF), finish()).unwrap().state;
    assert_eq!(step(&mine, Actor::Chief(CHIEF), approve()), Err(Refusal::SamePerson));
    assert_eq!(step(&mine, Actor::Chief(CHIEF), send_back()), Err(Refusal::SamePerson));
    // Another chief can.
    let t = step(&mine, Actor::Chief(OTHER_CHIEF), approve()).unwrap();
    assert_eq!(t.state.status, Status::Done);

    // Returned and finished again... the decision it checks is the newest one.
    let returned = step(&mine, Actor::Chief(OTHER_CHIEF), send_back()).unwrap().state;
    let again = step(&returned, Actor::Approver(APPROVER), decide(Outcome::Done, CallFacts::default())).unwrap().state;
    assert_eq!(again.decision.as_ref().unwrap().by, APPROVER);
    // CHIEF finished the first decision, not this one: he may sign this one off.
    assert_eq!(step(&again, Actor::Chief(CHIEF), approve()).unwrap().state.status, Status::Done);
}

#[test]
fn call_requests_and_supplements() {
    for status in [Status::Open, Status::Missing] {
        let s = state_in(status, false);
        assert!(step(&s, Actor::Kiosk, Command::RequestCall { in_call: false }).unwrap().events.is_empty());
        assert_eq!(step(&s, Actor::Kiosk, Command::RequestCall { in_call: true }), Err(Refusal::InCall));
    }
    for status in [Status::Later, Status::Signoff, Status::Returned, Status::Done, Status::Refused] {
        let s = state_in(status, true);
        assert!(matches!(step(&s, Actor::Kiosk, Command::RequestCall { in_call: false }), Err(Refusal::Status { .. })));
        assert!(matches!(step(&s, Actor::Kiosk, Command::CallQueued), Err(Refusal::Status { .. })));
    }
    let missing = state_in(Status::Missing, true);
    let t = step(&missing, Actor::Kiosk, Command::CallQueued).unwrap();
    assert_eq!((t.state.status, &t.events[..]), (Status::Open, &[CaseEvent::Resumed {}][..]));
    // The resumed case keeps its 现场开单 decision until the next one.
    assert_eq!(t.state.decision.as_ref().unwrap().outcome, Outcome::Missing);
    // Deciding the supplement call replaces it.
    let t = step(&t.state, Actor::Approver(OTHER_APPROVER), decide(Outcome::Done, in_call(OTHER_APPROVER))).unwrap();
    assert_eq!(t.state.status, Status::Signoff);
    // Its sign-off is by someone other than the approver of the supplement call.
    assert!(step(&t.state, Actor::Chief(CHIEF), approve()).is_ok());
    // An open case stays open; the call is not the staff's to request.
    let open = CaseState::new(false);
    assert_eq!(step(&open, Actor::Kiosk, Command::CallQueued).unwrap().state, open);
    assert!(matches!(step(&open, Actor::Approver(APPROVER), Command::CallQueued), Err(Refusal::Role(_))));
    assert!(matches!(step(&open, Actor::Chief(CHIEF), Command::RequestCall { in_call: false }), Err(Refusal::Role(_))));
}

#[test]
fn papers_villager_and_rescans() {
    use PaperKind::{Result, Scan};
    for status in Status::ALL.iter().copied() {
        let s = state_in(status, true);
        let scan = step(&s, Actor::Kiosk, Command::AddPaper(Scan));
        assert_eq!(scan.is_ok(), matches!(status, Status::Open | Status::Missing), "{status}");
        for town in [Actor::Approver(APPROVER), Actor::Chief(CHIEF)] {
            let result = step(&s, town, Command::AddPaper(Result));
            assert_eq!(result.is_ok(), !status.is_final(), "{status}");
            assert!(matches!(step(&s, town, Command::AddPaper(Scan)), Err(Refusal::Role(_))));
            let rescan = step(&s, town, Command::RequestRescan { paper_id: Some(1), note: "看不清".into() });
            assert_eq!(rescan.is_ok(), !status.is_final());
            if let Ok(t) = rescan {
                assert_eq!(t.state, s);
                assert_eq!(t.effects, vec![Effect::AskRescan { paper_id: Some(1), note: "看不清".into() }]);
            }
        }
        assert!(matches!(step(&s, Actor::Kiosk, Command::AddPaper(Result)), Err(Refusal::Role(_))));
        assert!(matches!(step(&s, Actor::Supervisor(1), Command::AddPaper(Scan)), Err(Refusal::Role(_))));
        assert_eq!(step(&s, Actor::Kiosk, Command::SetVillager).is_ok(), !status.is_final());
        assert!(matches!(step(&s, Actor::Approver(APPROVER), Command::SetVillager), Err(Refusal::Role(_))));
        assert!(matches!(
            step(&s, Actor::Kiosk, Command::RequestRescan { paper_id: None, note: "x".into() }),
            Err(Refusal::Role(_))
        ));
    }
}

fn scan(removed: bool) -> PaperFacts {
    PaperFacts { id: 5, kind: PaperKind::Scan, checklist_item: Some("身份证".into()), removed }
}

#[test]
fn the_village_corrects_its_scans_while_the_case_takes_scans() {
    for status in Status::ALL.iter().copied() {
        for needs_signoff in [false, true] {
            if matches!(status, Status::Signoff | Status::Returned) && !needs_signoff {
                continue;
            }
            let s = state_in(status, needs_signoff);
            let takes_scans = matches!(status, Status::Open | Status::Missing);
            let retag = step(
                &s,
                Actor::Kiosk,
                Command::RetagPaper { paper: scan(false), checklist_item: Some("户口本".into()) },
            );
            let remove = step(&s, Actor::Kiosk, Command::RemovePaper { paper: scan(false) });
            if takes_scans {
                let t = retag.unwrap();
                assert_eq!((t.state, t.effects), (s.clone(), Vec::new()));
                assert_eq!(
                    t.events,
                    vec![CaseEvent::PaperRetagged {
                        paper_id: 5,
                        from: Some("身份证".into()),
                        to: Some("户口本".into())
                    }]
                );
                let t = remove.unwrap();
                assert_eq!(t.state, s);
                assert_eq!(
                    t.events,
                    vec![CaseEvent::PaperRemoved { paper_id: 5, checklist_item: Some("身份证".into()) }]
                );
                // The same tag again changes nothing and writes nothing.
                let same = step(
                    &s,
                    Actor::Kiosk,
                    Command::RetagPaper { paper: scan(false), checklist_item: Some("身份证".into()) },
                );
                assert!(same.unwrap().events.is_empty());
                // To 其他材料.
                let other =
                    step(&s, Actor::Kiosk, Command::RetagPaper { paper: scan(false), checklist_item: None }).unwrap();
                assert!(matches!(other.events[..], [CaseEvent::PaperRetagged { to: None, .. }]));
                // A paper taken back already is not corrected again.
                assert_eq!(
                    step(&s, Actor::Kiosk, Command::RemovePaper { paper: scan(true) }),
                    Err(Refusal::PaperRemoved)
                );
                assert_eq!(
                    step(&s, Actor::Kiosk, Command::RetagPaper { paper: scan(true), checklist_item: None }),
                    Err(Refusal::PaperRemoved)
                );
            } else {
                assert_eq!(retag, Err(Refusal::Closed(status)), "{status}");
                assert_eq!(remove, Err(Refusal::Closed(status)), "{status}");
            }
            // Never the town, a supervisor, or a result paper.
            for actor in [Actor::Approver(APPROVER), Actor::Chief(CHIEF), Actor::Supervisor(1)] {
                assert!(matches!(step(&s, actor, Command::RemovePaper { paper: scan(false) }), Err(Refusal::Role(_))));
                assert!(matches!(
                    step(&s, actor, Command::RetagPaper { paper: scan(false), checklist_item: None }),
                    Err(Refusal::Role(_))
                ));
            }
            let result = PaperFacts { id: 6, kind: PaperKind::Result, checklist_item: None, removed: false };
            assert!(matches!(step(&s, Actor::Kiosk, Command::RemovePaper { paper: result }), Err(Refusal::Role(_))));
        }
    }
}

#[test]
fn text_forms_round_trip() {
    for s in Status::ALL {
        assert_eq!(Status::parse(s.as_str()), Some(*s));
        assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
    }
    for o in Outcome::ALL {
        assert_eq!(Outcome::parse(o.as_str()), Some(*o));
    }
    for k in PaperKind::ALL {
        assert_eq!(PaperKind::parse(k.as_str()), Some(*k));
    }
    for d in SignoffDecision::ALL {
        assert_eq!(SignoffDecision::parse(d.as_str()), Some(*d));
    }
    assert_eq!(Status::parse("reviewing"), None);
    let ev = serde_json::to_value(CaseEvent::Resumed {}).unwrap();
    assert_eq!(ev, serde_json::json!({"kind": "case.resumed", "detail": {}}));
}

/// A small deterministic generator (xorshift), so that a failing walk can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[(self.next() % items.len() as u64) as usize].clone()
    }
}

fn random_command(rng: &mut Rng) -> Command {
    let person = |rng: &mut Rng| rng.pick(&[None, Some(APPROVER), Some(OTHER_APPROVER)]);
    let paper = |rng: &mut Rng| {
        rng.pick(&[
            None,
            Some(ResultPaper { id: 1, kind: Some(PaperKind::Result) }),
            Some(ResultPaper { id: 2, kind: Some(PaperKind::Scan) }),
            Some(ResultPaper { id: 3, kind: None }),
        ])
    };
    match rng.next() % 10 {
        0 => Command::RequestCall { in_call: rng.next().is_multiple_of(2) },
        1 => Command::CallQueued,
        2 => Command::AddPaper(rng.pick(PaperKind::ALL)),
        3 => Command::SetVillager,
        4 => Command::RequestRescan { paper_id: None, note: "x".into() },
        5 => Command::Decide {
            outcome: rng.pick(Outcome::ALL),
            note: rng.pick(&["".to_string(), "理由".to_string()]),
            missing_items: rng.pick(&[Vec::new(), vec!["户口本".to_string()]]),
            result_paper: paper(rng),
            calls: CallFacts { live_approver: person(rng), last_answerer: person(rng) },
            villager: rng.pick(&[true, false]),
        },
        7 => Command::RetagPaper {
            paper: PaperFacts {
                id: 2,
                kind: rng.pick(PaperKind::ALL),
                checklist_item: rng.pick(&[None, Some("身份证".to_string())]),
                removed: rng.pick(&[true, false]),
            },
            checklist_item: rng.pick(&[None, Some("户口本".to_string())]),
        },
        8 => Command::RemovePaper {
            paper: PaperFacts {
                id: 2,
                kind: rng.pick(PaperKind::ALL),
                checklist_item: None,
                removed: rng.pick(&[true, false]),
            },
        },
        6 => Command::Finish {
            note: "x".into(),
            result_paper: paper(rng).unwrap_or(ResultPaper { id: 1, kind: Some(PaperKind::Result) }),
        },
        _ => Command::SignOff {
            decision: rng.pick(SignoffDecision::ALL),
            reason: rng.pick(&[None, Some("再核实".to_string())]),
        },
    }
}

#[test]
fn random_walks_keep_the_invariants() {
    let actors = [
        Actor::Kiosk,
        Actor::Approver(APPROVER),
        Actor::Approver(OTHER_APPROVER),
        Actor::Chief(CHIEF),
        Actor::Chief(OTHER_CHIEF),
        Actor::Supervisor(30),
    ];
    let mut seen = std::collections::BTreeSet::new();
    for seed in 1..=300u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut s = CaseState::new(seed % 2 == 0);
        for i in 0..200 {
            let actor = rng.pick(&actors);
            let cmd = random_command(&mut rng);
            let before = s.clone();
            match apply(&s, actor, cmd.clone(), NOW + i) {
                Ok(t) => {
                    check_invariants(&t.state)
                        .unwrap_or_else(|e| panic!("seed {seed} step {i}: {e}\n{before:?}\n{actor:?} {cmd:?}"));
                    // A status change always writes an event (the timeline misses nothing).
                    if t.state.status != before.status {
                        assert!(!t.events.is_empty(), "seed {seed} step {i}: silent change by {cmd:?}");
                    }
                    seen.insert(t.state.status);
                    s = t.state;
                }
                Err(_) => assert_eq!(s, before),
            }
        }
    }
    // The walk reached every status.
    assert_eq!(seen.len(), Status::ALL.len(), "{seen:?}");
}

#[test]
fn every_event_has_its_kind() {
    let events = [
        CaseEvent::Resumed {},
        CaseEvent::RescanRequested { paper_id: None, note: "x".into() },
        CaseEvent::Decided {
            outcome: Outcome::Done,
            note: "x".into(),
            missing_items: vec![],
            result_paper_id: Some(1),
            pending_signoff: false,
        },
        CaseEvent::Finished { note: "x".into(), result_paper_id: 1, pending_signoff: true },
        CaseEvent::SignoffApproved { reason: None },
        CaseEvent::SignoffReturned { reason: Some("x".into()) },
        CaseEvent::OutcomeFinal { outcome: Outcome::Refused, note: "x".into(), result_paper_id: None },
        CaseEvent::VillagerSet { id_number: true },
        CaseEvent::PaperAdded {
            kind: PaperKind::Scan,
            checklist_item: None,
            size: 9,
            content_type: "image/png".into(),
            paper_id: 3,
        },
        CaseEvent::PaperRetagged { paper_id: 3, from: None, to: Some("户口本".into()) },
        CaseEvent::PaperRemoved { paper_id: 3, checklist_item: None },
        CaseEvent::PaperViewed { paper_id: 3 },
        CaseEvent::RatingGiven { rating: Rating::Good },
    ];
    let kinds: std::collections::BTreeSet<EventKind> = events.iter().map(|e| e.kind_and_detail().0).collect();
    assert_eq!(kinds.len(), events.len());
    assert!(!kinds.contains(&EventKind::Opened));
    let (kind, detail) = events[2].kind_and_detail();
    assert_eq!(kind, EventKind::Decided);
    assert_eq!(detail["outcome"], "done");
    assert_eq!(detail["pending_signoff"], false);
    assert_eq!(events[0].kind_and_detail().1, serde_json::json!({}));
}
