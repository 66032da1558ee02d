//! The words the pages show for a case's status: one place, for the kiosk, the window, the
//! chief, the receipt, the progress page and the pushes. The village never sees the sign-off
//! stages (`signoff`, `returned`): to it they are "审核中" (`reviewing`).

use super::lifecycle::{Status, text_enum};

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

impl ShownStatus {
    pub fn text(self) -> &'static str {
        match self {
            ShownStatus::Open => "待办理",
            ShownStatus::Missing => "需补充材料",
            ShownStatus::Later => "已受理,镇上办理中",
            ShownStatus::Reviewing => "审核中",
            ShownStatus::Signoff => "待窗口负责人审核",
            ShownStatus::Returned => "已退回窗口重新审查",
            ShownStatus::Done => "已办结",
            ShownStatus::Refused => "不予办理",
        }
    }

    pub fn next_step(self) -> &'static str {
        match self {
            ShownStatus::Open => "请到村便民服务室与镇窗口视频办理",
            ShownStatus::Missing => "请按补充清单准备好材料,带到村便民服务室继续办理",
            ShownStatus::Later => "请放心回家,办好后结果会送到村便民服务室",
            ShownStatus::Reviewing | ShownStatus::Signoff | ShownStatus::Returned => {
                "窗口负责人审核中,审核后结果会送到村便民服务室"
            }
            ShownStatus::Done => "已办结,请到村便民服务室领取结果",
            ShownStatus::Refused => "不能办理,原因已当面说明;如有疑问请联系村便民服务室",
        }
    }

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

/// The public progress page of a case (printed on receipts as a QR code).
pub fn progress_path(case_no: &str) -> String {
    format!("/progress?case={case_no}")
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
}
