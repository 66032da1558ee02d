//! A case as the rest of the server reads it: the stored record with the names it shows, and
//! who wrote each timeline entry.

use super::lifecycle::{CaseState, Status, text_enum};

/// One case with everything shown about it (names of matter, village, town, deciders).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseRecord {
    pub id: i64,
    pub case_no: String,
    pub matter_id: i64,
    pub matter_name: String,
    pub matter_plain_name: String,
    pub required_papers: Vec<String>,
    pub village_id: i64,
    pub village_name: String,
    pub town_id: i64,
    pub town_name: String,
    /// The kiosk that opened it.
    pub kiosk_id: Option<i64>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    pub villager_name: Option<String>,
    pub villager_phone: Option<String>,
    pub id_number_masked: Option<String>,
    /// Status, decision and sign-off: what the lifecycle works on.
    pub state: CaseState,
    pub decided_by_name: Option<String>,
    pub signoff_by_name: Option<String>,
}

impl CaseRecord {
    pub fn status(&self) -> Status {
        self.state.status
    }

    pub fn is_final(&self) -> bool {
        self.state.status.is_final()
    }
}

/// Whose cases a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseScope {
    Village(i64),
    Town(i64),
    County,
}

text_enum! {
    /// Who wrote a timeline entry or added a paper.
    pub enum ActorKind {
        Kiosk = "kiosk",
        Staff = "staff",
        System = "system",
    }
}

/// Who did something on a case, as the timeline shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EventActor {
    pub kind: ActorKind,
    pub id: Option<i64>,
    pub name: String,
}

impl EventActor {
    pub fn system() -> EventActor {
        EventActor { kind: ActorKind::System, id: None, name: String::new() }
    }

    pub fn kiosk(kiosk_id: i64, name: impl Into<String>) -> EventActor {
        EventActor { kind: ActorKind::Kiosk, id: Some(kiosk_id), name: name.into() }
    }
}
