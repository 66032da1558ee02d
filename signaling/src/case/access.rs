//! Who may see and act on which cases: the viewer of a request, with the scope that matters
//! (the village room sees its village's cases, the town's staff their town's, supervisors all).

use super::lifecycle::Actor;
use super::record::{ActorKind, CaseRecord, CaseScope, EventActor};
use super::words::Audience;
use crate::identity::{Principal, Role};

/// Who is looking at cases. Dispatchers and administrators have no business with them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    Kiosk {
        kiosk_id: i64,
        village_id: i64,
        town_id: i64,
        name: String,
    },
    Approver {
        user_id: i64,
        town_id: i64,
        window_id: Option<i64>,
        name: String,
    },
    Chief {
        user_id: i64,
        town_id: i64,
        name: String,
    },
    /// County-wide, or limited to one town.
    Supervisor {
        user_id: i64,
        town: Option<i64>,
        name: String,
    },
}

impl Viewer {
    /// The viewer a principal is, or `None` for the roles that see no cases.
    pub fn of(p: &Principal) -> Option<Viewer> {
        match p {
            Principal::Kiosk { kiosk_id, village_id, town_id, name } => Some(Viewer::Kiosk {
                kiosk_id: *kiosk_id,
                village_id: *village_id,
                town_id: *town_id,
                name: name.clone(),
            }),
            Principal::Staff { user_id, role: Role::Approver, town_id: Some(t), window_id, name } => {
                Some(Viewer::Approver { user_id: *user_id, town_id: *t, window_id: *window_id, name: name.clone() })
            }
            Principal::Staff { user_id, role: Role::Chief, town_id: Some(t), name, .. } => {
                Some(Viewer::Chief { user_id: *user_id, town_id: *t, name: name.clone() })
            }
            Principal::Staff { user_id, role: Role::Supervisor, town_id, name, .. } => {
                Some(Viewer::Supervisor { user_id: *user_id, town: *town_id, name: name.clone() })
            }
            Principal::Staff { role: Role::Approver | Role::Chief | Role::Dispatcher | Role::Admin, .. } => None,
        }
    }

    pub fn is_village(&self) -> bool {
        matches!(self, Viewer::Kiosk { .. })
    }

    pub fn audience(&self) -> Audience {
        if self.is_village() { Audience::Village } else { Audience::Town }
    }

    pub fn may_read(&self, case: &CaseRecord) -> bool {
        match self {
            Viewer::Kiosk { village_id, .. } => *village_id == case.village_id,
            Viewer::Approver { town_id, .. } | Viewer::Chief { town_id, .. } => *town_id == case.town_id,
            Viewer::Supervisor { town: Some(t), .. } => *t == case.town_id,
            Viewer::Supervisor { town: None, .. } => true,
        }
    }

    /// The actor the lifecycle sees.
    pub fn actor(&self) -> Actor {
        match self {
            Viewer::Kiosk { .. } => Actor::Kiosk,
            Viewer::Approver { user_id, .. } => Actor::Approver(*user_id),
            Viewer::Chief { user_id, .. } => Actor::Chief(*user_id),
            Viewer::Supervisor { user_id, .. } => Actor::Supervisor(*user_id),
        }
    }

    /// Who the timeline says did it.
    pub fn stamp(&self) -> EventActor {
        match self {
            Viewer::Kiosk { kiosk_id, name, .. } => EventActor::kiosk(*kiosk_id, name.clone()),
            Viewer::Approver { user_id, name, .. }
            | Viewer::Chief { user_id, name, .. }
            | Viewer::Supervisor { user_id, name, .. } => {
                EventActor { kind: ActorKind::Staff, id: Some(*user_id), name: name.clone() }
            }
        }
    }

    pub fn scope(&self) -> CaseScope {
        match self {
            Viewer::Kiosk { village_id, .. } => CaseScope::Village(*village_id),
            Viewer::Approver { town_id, .. } | Viewer::Chief { town_id, .. } => CaseScope::Town(*town_id),
            Viewer::Supervisor { town: Some(t), .. } => CaseScope::Town(*t),
            Viewer::Supervisor { town: None, .. } => CaseScope::County,
        }
    }
}

/// Case numbers are short ASCII (`ZH-20261122-0007`); anything else cannot be one.
pub fn plausible_case_no(s: &str) -> bool {
    !s.is_empty() && s.len() <= 40 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_numbers() {
        assert!(plausible_case_no("ZH-20261122-0007"));
        assert!(!plausible_case_no("../x") && !plausible_case_no("") && !plausible_case_no(&"A".repeat(41)));
    }

    #[test]
    fn roles_without_cases() {
        for role in [Role::Dispatcher, Role::Admin] {
            let p = Principal::Staff { user_id: 1, role, town_id: Some(1), window_id: None, name: String::new() };
            assert_eq!(Viewer::of(&p), None);
        }
        // An approver or chief without a town sees nothing either.
        let p = Principal::Staff { user_id: 1, role: Role::Chief, town_id: None, window_id: None, name: String::new() };
        assert_eq!(Viewer::of(&p), None);
    }
}
