//! 一对多 in review: a group call (a dispatcher with several villages, for a notice or a
//! training) belongs to no case, but every side of it is recorded like a case's call. This
//! lists the group calls a reviewer may see (county-wide supervisors all of them; a town's
//! supervisor or chief those one of whose participants is of his town), and gives one of them
//! with its recordings as the player needs them. Listing and opening are access entries of the
//! audit record, written before the answer; playing goes through `service::playback` with a
//! [`MediaOwner::GroupCall`](super::playback::MediaOwner).

use std::collections::HashMap;

use serde::Serialize;
use serde_json::json;

use crate::audit::AccessAction;
use crate::case::{CaseScope, Viewer};
use crate::db::{DataError, Db, GroupCallFilter, GroupCallRow};
use crate::error::{Error, Rejection};

use super::audit::{Access, Audit};
use super::review::{MAX_PAGE, OPEN_WINDOW_MS, RecordingReview, media_side, recording_review, scope_of};

/// One opening of a group call room: `{group}-{take}` on the wire (`3-1733472000000`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GroupCallId {
    pub group: u64,
    /// Unix ms the room was opened.
    pub take: u64,
}

impl GroupCallId {
    pub fn parse(s: &str) -> Option<GroupCallId> {
        let (group, take) = s.split_once('-')?;
        let digits = |p: &str| !p.is_empty() && p.len() <= 19 && p.bytes().all(|b| b.is_ascii_digit());
        if !digits(group) || !digits(take) {
            return None;
        }
        Some(GroupCallId { group: group.parse().ok()?, take: take.parse().ok()? })
    }

    /// The room of its recordings (`group:N`).
    pub fn room(&self) -> String {
        format!("group:{}", self.group)
    }

    fn of_row(row: &GroupCallRow) -> Option<GroupCallId> {
        let group = row.room.strip_prefix("group:")?.parse().ok()?;
        Some(GroupCallId { group, take: row.take })
    }
}

impl std::fmt::Display for GroupCallId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.group, self.take)
    }
}

/// Who took part, as the review names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupMember {
    /// The media label (`staff:ID`, `kiosk:ID`).
    pub participant: String,
    /// `town` (the dispatcher) or `village`.
    pub side: &'static str,
    /// The staff member's name, or the kiosk's village and name (`青山村 便民服务室`).
    pub name: String,
}

/// A group call in the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupCallSummary {
    pub id: String,
    pub started_at_ms: u64,
    /// Absent while a side still records.
    pub ended_at_ms: Option<u64>,
    /// The town side first, then the villages.
    pub members: Vec<GroupMember>,
    /// Recordings not complete (cut off, or still recording).
    pub incomplete: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupCallPage {
    pub total: u64,
    pub items: Vec<GroupCallSummary>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// One group call with its recordings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupCallReview {
    pub call: GroupCallSummary,
    pub recordings: Vec<RecordingReview>,
}

/// The town a reviewer is limited to (`None`: county-wide).
fn town_of(viewer: &Viewer) -> Result<Option<i64>, Error> {
    Ok(match scope_of(viewer)? {
        CaseScope::Town(t) => Some(t),
        CaseScope::County | CaseScope::Village(_) => None,
    })
}

fn member(db: &Db, participant: &str) -> Result<GroupMember, DataError> {
    let id = participant.split_once(':').and_then(|(_, id)| id.parse::<i64>().ok());
    let side = media_side(participant);
    let name = match (side, id) {
        ("village", Some(id)) => match db.kiosk(id)? {
            Some(k) => match db.village(k.village_id)? {
                Some(v) => format!("{} {}", v.name, k.name),
                None => k.name,
            },
            None => format!("村便民服务室 {id}"),
        },
        (_, Some(id)) => db.user(id)?.map(|u| u.display_name).unwrap_or_else(|| format!("工作人员 {id}")),
        (_, None) => participant.to_string(),
    };
    Ok(GroupMember { participant: participant.to_string(), side, name })
}

fn summary(db: &Db, row: &GroupCallRow) -> Result<Option<GroupCallSummary>, DataError> {
    let Some(id) = GroupCallId::of_row(row) else { return Ok(None) };
    let mut labels = row.participants.clone();
    labels.sort_by_key(|p| (media_side(p) != "town", p.clone()));
    labels.dedup();
    let members = labels.iter().map(|p| member(db, p)).collect::<Result<_, _>>()?;
    Ok(Some(GroupCallSummary {
        id: id.to_string(),
        started_at_ms: row.started_at_ms,
        ended_at_ms: row.ended_at_ms,
        members,
        incomplete: row.incomplete,
    }))
}

/// The group calls opened in `[from_ms, to_ms)` in the viewer's scope, newest first, `limit`
/// at a time after `cursor` (the last id of the page before). The listing is recorded.
#[allow(clippy::too_many_arguments)]
pub async fn list(
    db: &Db,
    audit: &Audit,
    viewer: &Viewer,
    from_ms: Option<u64>,
    to_ms: Option<u64>,
    cursor: Option<GroupCallId>,
    limit: usize,
    address: Option<String>,
) -> Result<GroupCallPage, Error> {
    let town_id = town_of(viewer)?;
    let detail = json!({"from_ms": from_ms, "to_ms": to_ms});
    audit
        .access(&viewer.stamp(), Access { action: AccessAction::GroupCallsListed, case_id: None, detail, address })
        .await?;
    let limit = limit.clamp(1, MAX_PAGE);
    let filter = GroupCallFilter { town_id, from_ms, to_ms };
    db.run(move |db| -> Result<GroupCallPage, DataError> {
        let room = cursor.map(|c| c.room());
        let before = cursor.as_ref().zip(room.as_deref()).map(|(c, room)| (c.take, room));
        let (total, rows) = db.group_calls(filter, before, limit + 1)?;
        let more = rows.len() > limit;
        let mut items = Vec::new();
        for row in rows.iter().take(limit) {
            items.extend(summary(db, row)?);
        }
        let next_cursor = if more { items.last().map(|i| i.id.clone()) } else { None };
        Ok(GroupCallPage { total, items, next_cursor })
    })
    .await
    .map_err(Error::from)
}

/// The call `id` if it exists and is in the viewer's scope; 404 otherwise (a reviewer of
/// another town is not told that it exists).
pub async fn check(db: &Db, viewer: &Viewer, id: GroupCallId) -> Result<(), Error> {
    let town_id = town_of(viewer)?;
    let found = db.run(move |db| db.group_call_visible(&id.room(), id.take, town_id)).await?;
    if found { Ok(()) } else { Err(Rejection::not_found("group call").into()) }
}

/// The group call `id` with its recordings; the opening is recorded (once per viewer per ten
/// minutes) before anything is shown.
pub async fn review(
    db: &Db,
    audit: &Audit,
    viewer: &Viewer,
    id: GroupCallId,
    address: Option<String>,
) -> Result<GroupCallReview, Error> {
    check(db, viewer, id).await?;
    let detail = json!({"group_call": id.to_string()});
    let access = Access { action: AccessAction::GroupCallOpened, case_id: None, detail, address };
    audit.access_once(&viewer.stamp(), access, OPEN_WINDOW_MS).await?;
    db.run(move |db| -> Result<GroupCallReview, Error> {
        let room = id.room();
        let rows = db.recordings_of_group_call(&room, id.take)?;
        let row = GroupCallRow {
            room: room.clone(),
            take: id.take,
            started_at_ms: rows.iter().map(|r| r.started_at_ms).min().unwrap_or(id.take),
            ended_at_ms: if rows.iter().all(|r| r.ended_at_ms.is_some()) {
                rows.iter().filter_map(|r| r.ended_at_ms).max()
            } else {
                None
            },
            participants: rows.iter().map(|r| r.participant.clone()).collect(),
            incomplete: u32::try_from(rows.iter().filter(|r| r.status != "complete").count()).unwrap_or(u32::MAX),
        };
        let call = summary(db, &row)?.ok_or_else(|| Rejection::not_found("group call"))?;
        let mut recordings = Vec::new();
        for r in rows {
            let mut destroyed = HashMap::new();
            for key in db.recording_segment_keys(r.id)? {
                if let Some(at) = db.object_destroyed_at(&key)? {
                    destroyed.insert(key, at);
                }
            }
            let base = format!("/api/group-calls/{id}/recordings/{}", r.id);
            recordings.push(recording_review(db, r, &base, &destroyed)?);
        }
        Ok(GroupCallReview { call, recordings })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_refuse_anything_else() {
        let id = GroupCallId::parse("3-1733472000000").expect("an id");
        assert_eq!(id, GroupCallId { group: 3, take: 1_733_472_000_000 });
        assert_eq!(id.to_string(), "3-1733472000000");
        assert_eq!(id.room(), "group:3");
        for bad in ["", "3", "3-", "-1", "a-1", "3-1-2", "3-+1", " 3-1", "3-1 ", "99999999999999999999-1", "3-1x"] {
            assert_eq!(GroupCallId::parse(bad), None, "{bad:?}");
        }
    }
}
