//! The case domain, pure: the lifecycle state machine with its enumerations, the status words
//! the pages show, who may see which case, and the villager's personal data. No I/O, no
//! clock, no HTTP: `db` stores these types, `service` runs them against the database and the
//! object store, `api` and the engine call `service`.

pub mod access;
pub mod booking;
pub mod days;
pub mod lifecycle;
pub mod record;
pub mod stats;
pub mod villager;
pub mod words;

pub use access::{Viewer, plausible_case_no};
pub use booking::BookingStatus;
pub use lifecycle::{
    Actor, CallFacts, CaseEvent, CaseState, Command, Decision, Effect, EventKind, Outcome, PaperFacts, PaperKind,
    Rating, Refusal, ResultPaper, Signoff, SignoffDecision, Status, Transition, apply,
};
pub use record::{ActorKind, CaseRecord, CaseScope, EventActor};
pub use words::{Audience, ShownStatus, progress_path, receipt_progress_path};
