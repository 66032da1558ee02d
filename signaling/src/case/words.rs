//! The words the pages show: one place, for the kiosk, the window, the chief, the dispatcher,
//! the receipt, the progress page and the pushes. Case statuses (as each audience sees them),
//! outcomes, sign-off decisions, booking statuses, why a call ended and why a ring stopped;
//! every enumeration has its words here in an exhaustive `match`, and [`tables`] gives them
//! all, keyed by their wire values, to the pages' generated module (`/static/words.js`).
//! The village never sees the sign-off stages (`signoff`, `returned`): to it they are "审核中"
//! (`reviewing`).

use super::booking::BookingStatus;
use super::lifecycle::{EventKind, Outcome, Rating, SignoffDecision, Status, text_enum};
use crate::queue::{CallEndReason, MemberStatus, RingStopReason};

/// Whose eyes a status is shown to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// The village room (kiosk), its receipts and the public progress page.
    Village,
    /// The town (approver, chief) and the supervisors.
    Town,
}

text_enum! {
    /// A status as a page shows it.
    pub enum ShownStatus {
        Open = "open",
        Missing = "missing",
        Later = "later",
        /// `signoff` or `returned`, as the village sees them.
        Reviewing = "reviewing",
        Signoff = "signoff",
        Returned = "returned",
        Done = "done",
        Refused = "refused",
    }
}

impl Status {
    /// The status as `audience` sees it.
    pub fn shown(self, audience: Audience) -> ShownStatus {
        match (self, audience) {
            (Status::Open, _) => ShownStatus::Open,
            (Status::Missing, _) => ShownStatus::Missing,
            (Status::Later, _) => ShownStatus::Later,
            (Status::Signoff | Status::Returned, Audience::Village) => ShownStatus::Reviewing,
            (Status::Signoff, Audience::Town) => ShownStatus::Signoff,
            (Status::Returned, Audience::Town) => ShownStatus::Returned,
            (Status::Done, _) => ShownStatus::Done,
            (Status::Refused, _) => ShownStatus::Refused,
        }
    }

    /// What the villager does next (the village's words, shown to everybody).
    pub fn next_step(self) -> &'static str {
        self.shown(Audience::Village).next_step()
    }
}

/// One table of words the pages show: the wire value of every variant of one enumeration and
/// its words. The server serves every table to the pages as `/static/words.js`
/// (`api::pages`), so that no page carries a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WordTable {
    /// The name the module exports (`STATUS`, `OUTCOME`, ...).
    pub name: &'static str,
    /// What the words are for (a comment in the module).
    pub about: &'static str,
    /// (wire value, words), one per variant, in declaration order.
    pub entries: Vec<(&'static str, &'static str)>,
}

/// Defines, per table, a method of the enumeration with one arm per variant (an exhaustive
/// `match`: a new variant does not compile until it has its words) and lists every table in
/// [`tables`], built from the same arms.
macro_rules! word_tables {
    ($(
        $(#[$doc:meta])*
        $table:literal ($about:literal) => $ty:ident::$method:ident { $($var:ident => $word:literal),+ $(,)? }
    )+) => {
        $(
            impl $ty {
                $(#[$doc])*
                pub fn $method(self) -> &'static str {
                    match self { $($ty::$var => $word),+ }
                }
            }
        )+

        /// Every table of words, for the pages' module.
        pub fn tables() -> Vec<WordTable> {
            vec![$(
                WordTable { name: $table, about: $about, entries: vec![$(($ty::$var.as_str(), $word)),+] }
            ),+]
        }
    };
}

// Wording, where the pages once had copies that disagreed: the village's words are the ones a
// villager reads on the printed receipt, the banner and the progress page, so they say where
// the case stands in plain words without the town's names for its outcomes (现场开单, 当面说清):
// 待办理 (not "已受理,正在办理": nothing was decided yet), 需补充材料, 已受理,镇上办理中 (true on
// the progress page days later; "请放心回家" is the next step's), 不能办理 (plainer than 不予办理,
// and what the receipt's "不能办理的原因" row says).
word_tables! {
    /// The status in a few words: lists, the receipt's 办理结果, the kiosk's banner title.
    "STATUS" ("a case's status (village view: reviewing; town view: signoff, returned)") => ShownStatus::text {
        Open => "待办理",
        Missing => "需补充材料",
        Later => "已受理,镇上办理中",
        Reviewing => "审核中",
        Signoff => "待窗口负责人审核",
        Returned => "已退回窗口重新审查",
        Done => "已办结",
        Refused => "不能办理",
    }

    /// What the villager does next (the progress page, receipts).
    "NEXT_STEP" ("what the villager does next, by status") => ShownStatus::next_step {
        Open => "请到村便民服务室与镇窗口视频办理",
        Missing => "请按补充清单准备好材料,带到村便民服务室继续办理",
        Later => "请放心回家,办好后结果会送到村便民服务室",
        Reviewing => "窗口负责人审核中,审核后结果会送到村便民服务室",
        Signoff => "窗口负责人审核中,审核后结果会送到村便民服务室",
        Returned => "窗口负责人审核中,审核后结果会送到村便民服务室",
        Done => "已办结,请到村便民服务室领取结果",
        Refused => "不能办理,原因已当面说明;如有疑问请联系村便民服务室",
    }

    /// What the village clerk is told of a decision (the kiosk's outcome banner).
    "CLERK_NOTE" ("the kiosk's outcome banner: what the decision means for the clerk") => ShownStatus::clerk_note {
        Open => "镇窗口还没有作出决定。",
        Missing => "还缺材料。请打印补充材料清单给办事人,带齐以后再来,用案件编号继续办。",
        Later => "材料已经受理。镇上办好后,结果会送到村里的收件箱,到时打印给办事人。",
        Reviewing => "镇窗口已经审查,正在等窗口负责人审核。审核后结果会送到村里的收件箱。",
        Signoff => "镇窗口已经审查,正在等窗口负责人审核。审核后结果会送到村里的收件箱。",
        Returned => "镇窗口已经审查,正在等窗口负责人审核。审核后结果会送到村里的收件箱。",
        Done => "镇窗口已经办好了。结果文书传回来了,请打印给办事人。",
        Refused => "这件事不能在这里办理,原因已经当面说清楚了。",
    }

    /// The kiosk's print button for a case in this status.
    "PRINT_LABEL" ("the kiosk's print button, by status") => ShownStatus::print_label {
        Open => "打印回执",
        Missing => "打印补充材料清单",
        Later => "打印回执",
        Reviewing => "打印回执",
        Signoff => "打印回执",
        Returned => "打印回执",
        Done => "打印回执",
        Refused => "打印回执(写明原因)",
    }

    /// Where the decision stands, as the window page says it (town view).
    "DECISION_STATE" ("the window page's line on the decision, by status (town view)") => ShownStatus::decision_state {
        Open => "还没有作出决定",
        Missing => "已开单,等村里补材料",
        Later => "已受理(放心回家),办好后在工作台办结",
        Reviewing => "已审查,等窗口负责人审核",
        Signoff => "已审查,等窗口负责人审核",
        Returned => "窗口负责人退回了,请重新决定",
        Done => "已办结,结果已送到村里",
        Refused => "不能办理,原因已告诉村里",
    }

    /// The approver's name for an outcome (the window page's buttons, the first review).
    "OUTCOME" ("the four outcomes an approver decides") => Outcome::name {
        Done => "当场办结",
        Missing => "现场开单",
        Refused => "当面说清",
        Later => "放心回家",
    }

    /// The chief's sign-off, done.
    "SIGNOFF_DECISION" ("the window chief's sign-off (一审一核)") => SignoffDecision::text {
        Approved => "核准签发",
        Returned => "退回重新审查",
    }

    /// Where a 预约 booking stands.
    "BOOKING_STATUS" ("a booking's status") => BookingStatus::text {
        Booked => "已预约",
        Called => "已呼叫",
        Cancelled => "已取消",
    }

    /// Why a call ended, told to the village room.
    "CALL_ENDED_VILLAGE" ("why a call ended (call.ended), told to the village room") => CallEndReason::village_text {
        HangUp => "通话已结束。",
        Cancelled => "已经取消排队。",
        PeerGone => "镇窗口那边断开了,通话结束。需要的话请重新呼叫。",
        GraceExpired => "网络断开太久,通话结束了。需要的话请重新呼叫。",
        Transferred => "这次通话转给了镇上的另一个窗口。",
        NoWindow => "镇上暂时没有窗口能办理这个事项,请稍后再试,或打电话问问镇便民服务中心。",
        Removed => "县里调整了窗口或事项的设置,这次通话结束了。需要的话请重新呼叫。",
    }

    /// Why a call ended, told to the town window.
    "CALL_ENDED_TOWN" ("why a call ended (call.ended), told to the town window") => CallEndReason::town_text {
        HangUp => "通话已结束。",
        Cancelled => "对方取消了。",
        PeerGone => "村里那边断开了,通话结束。",
        GraceExpired => "村里那边长时间没有连上,通话结束。",
        Transferred => "这次通话已转给别的窗口。",
        NoWindow => "镇上没有窗口能接这个来电了,通话结束。",
        Removed => "县里调整了窗口或事项的设置,这次通话结束了。",
    }

    /// Why a ringing call stopped ringing, told to the town window.
    "RING_STOPPED" ("why a ring stopped (call.ring_stopped)") => RingStopReason::text {
        AnsweredElsewhere => "这个来电已被同事接了。",
        Cancelled => "对方取消了呼叫。",
        Timeout => "来电没有接听,已回到排队。",
        KioskOffline => "村里那边断线了,来电先停止响铃。",
        PresenceChanged => "您改了状态,来电不再响铃。",
        NotServed => "这个来电已不归您的窗口接待。",
    }

    /// The villager's 好差评, as the review page shows it.
    "RATING" ("the villager's rating of the service (好差评)") => Rating::text {
        Good => "好评(满意)",
        Fair => "中评(一般)",
        Bad => "差评(不满意)",
    }

    /// A timeline entry of a case, as the review page lists it (who did it is shown beside).
    "EVENT" ("a case timeline entry's kind (the review page's timeline and seek-bar marks)") => EventKind::text {
        Opened => "案件登记",
        CallRequested => "村里发起视频呼叫",
        CallAnswered => "镇窗口接听",
        CallEnded => "通话结束",
        Resumed => "继续办理",
        RescanRequested => "要求重新扫描材料",
        Decided => "窗口作出决定",
        Finished => "窗口办结(放心回家的案件)",
        SignoffApproved => "窗口负责人核准",
        SignoffReturned => "窗口负责人退回",
        OutcomeFinal => "结果生效",
        VillagerSet => "登记办事人",
        PaperAdded => "添加材料",
        PaperRetagged => "村里改了材料类别",
        PaperRemoved => "村里删除了材料",
        PaperViewed => "查看材料",
        RatingGiven => "办事人评价",
    }

    /// A village's place in a dispatcher's group call.
    "GROUP_MEMBER" ("a village's state in a group call (group.state), for the dispatcher") => MemberStatus::text {
        Invited => "正在呼叫…",
        Joined => "已加入",
        Declined => "没有接",
        Left => "已退出",
        NoAnswer => "没有应答,邀请已过期",
        Offline => "断线了",
    }
}

impl ShownStatus {
    /// The statuses a list filtered by this shown status contains, if `audience` may filter
    /// by it (the village cannot ask for the sign-off stages by name).
    pub fn statuses(self, audience: Audience) -> Option<&'static [Status]> {
        match (self, audience) {
            (ShownStatus::Open, _) => Some(&[Status::Open]),
            (ShownStatus::Missing, _) => Some(&[Status::Missing]),
            (ShownStatus::Later, _) => Some(&[Status::Later]),
            (ShownStatus::Reviewing, _) => Some(&[Status::Signoff, Status::Returned]),
            (ShownStatus::Signoff, Audience::Town) => Some(&[Status::Signoff]),
            (ShownStatus::Returned, Audience::Town) => Some(&[Status::Returned]),
            (ShownStatus::Signoff | ShownStatus::Returned, Audience::Village) => None,
            (ShownStatus::Done, _) => Some(&[Status::Done]),
            (ShownStatus::Refused, _) => Some(&[Status::Refused]),
        }
    }
}

/// The public progress page of a case.
pub fn progress_path(case_no: &str) -> String {
    format!("/progress?case={case_no}")
}

/// The public progress page of a case with its lookup code, as receipts print it (QR code).
pub fn receipt_progress_path(case_no: &str, lookup_code: &str) -> String {
    format!("/progress?case={case_no}&code={lookup_code}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_hide_signoff_from_the_village() {
        assert_eq!(Status::Signoff.shown(Audience::Village), ShownStatus::Reviewing);
        assert_eq!(Status::Returned.shown(Audience::Village), ShownStatus::Reviewing);
        assert_eq!(Status::Returned.shown(Audience::Town), ShownStatus::Returned);
        assert_eq!(Status::Done.shown(Audience::Village), ShownStatus::Done);
        for s in ShownStatus::ALL {
            assert!(!s.text().is_empty() && !s.next_step().is_empty());
        }
        // Every status is shown to both audiences, and the filters find it again.
        for s in Status::ALL {
            for a in [Audience::Village, Audience::Town] {
                let shown = s.shown(a);
                assert!(shown.statuses(a).unwrap().contains(s), "{s} {a:?}");
            }
        }
        assert_eq!(ShownStatus::Signoff.statuses(Audience::Village), None);
        assert_eq!(progress_path("ZH-20261122-0007"), "/progress?case=ZH-20261122-0007");
    }

    /// Every variant of every enumeration the pages show has its words in [`tables`], under
    /// its wire value, once; and no table is empty or repeats a name.
    #[test]
    fn every_variant_has_its_words_in_the_tables() {
        let tables = tables();
        let table = |name: &str| -> std::collections::BTreeMap<&str, &str> {
            let t = tables.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("no table {name}"));
            let map: std::collections::BTreeMap<_, _> = t.entries.iter().copied().collect();
            assert_eq!(map.len(), t.entries.len(), "{name} repeats a key");
            map
        };
        let check = |name: &str, want: Vec<(&'static str, &'static str)>| {
            let got = table(name);
            assert_eq!(got.len(), want.len(), "{name}: {got:?}");
            for (key, word) in want {
                assert_eq!(got.get(key), Some(&word), "{name}.{key}");
                assert!(!word.trim().is_empty(), "{name}.{key} is empty");
            }
        };
        check("STATUS", ShownStatus::ALL.iter().map(|s| (s.as_str(), s.text())).collect());
        check("NEXT_STEP", ShownStatus::ALL.iter().map(|s| (s.as_str(), s.next_step())).collect());
        check("CLERK_NOTE", ShownStatus::ALL.iter().map(|s| (s.as_str(), s.clerk_note())).collect());
        check("PRINT_LABEL", ShownStatus::ALL.iter().map(|s| (s.as_str(), s.print_label())).collect());
        check("DECISION_STATE", ShownStatus::ALL.iter().map(|s| (s.as_str(), s.decision_state())).collect());
        check("OUTCOME", Outcome::ALL.iter().map(|o| (o.as_str(), o.name())).collect());
        check("SIGNOFF_DECISION", SignoffDecision::ALL.iter().map(|d| (d.as_str(), d.text())).collect());
        check("BOOKING_STATUS", BookingStatus::ALL.iter().map(|b| (b.as_str(), b.text())).collect());
        check("CALL_ENDED_VILLAGE", CallEndReason::ALL.iter().map(|r| (r.as_str(), r.village_text())).collect());
        check("CALL_ENDED_TOWN", CallEndReason::ALL.iter().map(|r| (r.as_str(), r.town_text())).collect());
        check("RING_STOPPED", RingStopReason::ALL.iter().map(|r| (r.as_str(), r.text())).collect());
        check("GROUP_MEMBER", MemberStatus::ALL.iter().map(|m| (m.as_str(), m.text())).collect());
        check("EVENT", EventKind::ALL.iter().map(|e| (e.as_str(), e.text())).collect());
        check("RATING", Rating::ALL.iter().map(|r| (r.as_str(), r.text())).collect());
        let names: std::collections::BTreeSet<_> = tables.iter().map(|t| t.name).collect();
        assert_eq!(names.len(), tables.len(), "a table name twice");
        assert_eq!(tables.len(), 14, "a table without a check here: {names:?}");
        // The village's words for the statuses it sees read as the village should read them.
        assert_eq!(ShownStatus::Refused.text(), "不能办理");
        assert!(ShownStatus::Later.text().starts_with("已受理"));
    }
}
