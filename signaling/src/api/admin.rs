//! `/api/admin/...` for the region and the matter catalog: the county administrator creates,
//! edits, disables/enables and deletes towns, villages, windows and matters, each change in
//! effect at once (docs/admin.md). The rules are `service::admin`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::ApiError;
use super::extract::{Admin, JsonBody};
use crate::db::{
    AdminMatter, AdminRegion, AdminTown, AdminVillage, AdminWindow, MatterEdit, RegionItem, TownEdit, VillageEdit,
    VillageKind, WindowEdit, WindowKind,
};
use crate::identity::Principal;
use crate::service::admin::RegionAdmin;
use crate::state::AppState;

/// The region's administration, acting as the administrator of the request.
fn admin<'a>(state: &'a AppState, p: &Principal) -> RegionAdmin<'a> {
    RegionAdmin { db: &state.db, by: crate::service::accounts::actor_of(p), now_ms: crate::now_ms() }
}

pub(super) async fn region(State(state): State<AppState>, Admin(p): Admin) -> Result<Json<AdminRegion>, ApiError> {
    Ok(Json(admin(&state, &p).region().await?))
}

async fn reread<T>(state: &AppState, pick: impl FnOnce(AdminRegion) -> Option<T>) -> Result<T, ApiError> {
    let region = state.db.run(|db| db.admin_region()).await?;
    pick(region).ok_or_else(|| ApiError::not_found("record"))
}

// --- towns ---------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TownBody {
    name: String,
    #[serde(default)]
    any_window: bool,
}

impl From<TownBody> for TownEdit {
    fn from(b: TownBody) -> TownEdit {
        TownEdit { name: b.name, any_window: b.any_window }
    }
}

async fn town(state: &AppState, id: i64) -> Result<AdminTown, ApiError> {
    reread(state, |r| r.towns.into_iter().find(|t| t.id == id)).await
}

pub(super) async fn create_town(
    State(state): State<AppState>,
    Admin(p): Admin,
    JsonBody(b): JsonBody<TownBody>,
) -> Result<(StatusCode, Json<AdminTown>), ApiError> {
    let id = admin(&state, &p).create_town(b.into()).await?;
    state.region_changed([]).await;
    Ok((StatusCode::CREATED, Json(town(&state, id).await?)))
}

pub(super) async fn update_town(
    State(state): State<AppState>,
    Admin(p): Admin,
    Path(id): Path<i64>,
    JsonBody(b): JsonBody<TownBody>,
) -> Result<Json<AdminTown>, ApiError> {
    admin(&state, &p).update_town(id, b.into()).await?;
    state.region_changed([]).await;
    Ok(Json(town(&state, id).await?))
}

// --- villages ------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewVillageBody {
    town_id: i64,
    name: String,
    #[serde(default = "village_kind")]
    kind: VillageKind,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct VillageBody {
    name: String,
    #[serde(default = "village_kind")]
    kind: VillageKind,
}

fn village_kind() -> VillageKind {
    VillageKind::Village
}

async fn village(state: &AppState, id: i64) -> Result<AdminVillage, ApiError> {
    reread(state, |r| r.villages.into_iter().find(|v| v.id == id)).await
}

pub(super) async fn create_village(
    State(state): State<AppState>,
    Admin(p): Admin,
    JsonBody(b): JsonBody<NewVillageBody>,
) -> Result<(StatusCode, Json<AdminVillage>), ApiError> {
    let id = admin(&state, &p).create_village(b.town_id, VillageEdit { name: b.name, kind: b.kind }).await?;
    state.region_changed([]).await;
    Ok((StatusCode::CREATED, Json(village(&state, id).await?)))
}

pub(super) async fn update_village(
    State(state): State<AppState>,
    Admin(p): Admin,
    Path(id): Path<i64>,
    JsonBody(b): JsonBody<VillageBody>,
) -> Result<Json<AdminVillage>, ApiError> {
    admin(&state, &p).update_village(id, VillageEdit { name: b.name, kind: b.kind }).await?;
    state.region_changed([]).await;
    Ok(Json(village(&state, id).await?))
}

// --- windows -------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WindowBody {
    #[serde(default)]
    town_id: Option<i64>,
    name: String,
    kind: WindowKind,
    #[serde(default = "yes")]
    derive_matters: bool,
    #[serde(default)]
    matter_ids: Vec<i64>,
}

fn yes() -> bool {
    true
}

impl WindowBody {
    fn edit(self) -> WindowEdit {
        WindowEdit {
            name: self.name,
            kind: self.kind,
            derive_matters: self.derive_matters,
            matter_ids: self.matter_ids,
        }
    }
}

async fn window(state: &AppState, id: i64) -> Result<AdminWindow, ApiError> {
    reread(state, |r| r.windows.into_iter().find(|w| w.id == id)).await
}

pub(super) async fn create_window(
    State(state): State<AppState>,
    Admin(p): Admin,
    JsonBody(b): JsonBody<WindowBody>,
) -> Result<(StatusCode, Json<AdminWindow>), ApiError> {
    let ops = admin(&state, &p);
    let town_id = b.town_id.ok_or_else(|| ApiError::bad_request("请选择乡镇 (town_id is required)"))?;
    let id = ops.create_window(town_id, b.edit()).await?;
    state.region_changed([]).await;
    Ok((StatusCode::CREATED, Json(window(&state, id).await?)))
}

pub(super) async fn update_window(
    State(state): State<AppState>,
    Admin(p): Admin,
    Path(id): Path<i64>,
    JsonBody(b): JsonBody<WindowBody>,
) -> Result<Json<AdminWindow>, ApiError> {
    let ops = admin(&state, &p);
    if b.town_id.is_some() {
        return Err(ApiError::bad_request("窗口所属乡镇不能更改 (a window stays in its town)"));
    }
    ops.update_window(id, b.edit()).await?;
    state.region_changed([]).await;
    Ok(Json(window(&state, id).await?))
}

// --- matters -------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MatterBody {
    code: String,
    name: String,
    plain_name: String,
    #[serde(default)]
    department: String,
    window_kind: WindowKind,
    #[serde(default)]
    required_papers: Vec<String>,
    #[serde(default)]
    needs_signoff: bool,
    #[serde(default)]
    village_can_finish: bool,
    /// Search words (as in the import file).
    #[serde(default)]
    keywords: Vec<String>,
}

impl From<MatterBody> for MatterEdit {
    fn from(b: MatterBody) -> MatterEdit {
        MatterEdit {
            code: b.code,
            name: b.name,
            plain_name: b.plain_name,
            department: b.department,
            window_kind: b.window_kind,
            required_papers: b.required_papers,
            needs_signoff: b.needs_signoff,
            village_can_finish: b.village_can_finish,
            keywords: b.keywords.iter().map(|k| k.trim()).filter(|k| !k.is_empty()).collect::<Vec<_>>().join(" "),
        }
    }
}

async fn matter(state: &AppState, id: i64) -> Result<AdminMatter, ApiError> {
    reread(state, |r| r.matters.into_iter().find(|m| m.id == id)).await
}

pub(super) async fn create_matter(
    State(state): State<AppState>,
    Admin(p): Admin,
    JsonBody(b): JsonBody<MatterBody>,
) -> Result<(StatusCode, Json<AdminMatter>), ApiError> {
    let id = admin(&state, &p).create_matter(b.into()).await?;
    state.region_changed([]).await;
    Ok((StatusCode::CREATED, Json(matter(&state, id).await?)))
}

pub(super) async fn update_matter(
    State(state): State<AppState>,
    Admin(p): Admin,
    Path(id): Path<i64>,
    JsonBody(b): JsonBody<MatterBody>,
) -> Result<Json<AdminMatter>, ApiError> {
    admin(&state, &p).update_matter(id, b.into()).await?;
    state.region_changed([]).await;
    Ok(Json(matter(&state, id).await?))
}

// --- any kind ------------------------------------------------------------------------------

/// The item as it reads now, whatever its kind.
async fn item_json(state: &AppState, item: RegionItem, id: i64) -> Result<serde_json::Value, ApiError> {
    let v = match item {
        RegionItem::Town => serde_json::to_value(town(state, id).await?),
        RegionItem::Village => serde_json::to_value(village(state, id).await?),
        RegionItem::Window => serde_json::to_value(window(state, id).await?),
        RegionItem::Matter => serde_json::to_value(matter(state, id).await?),
    };
    v.map_err(|_| ApiError::internal())
}

async fn switch(
    state: AppState,
    p: Principal,
    item: RegionItem,
    id: i64,
    disable: bool,
) -> Result<Json<serde_json::Value>, ApiError> {
    let ended = admin(&state, &p).set_disabled(item, id, disable).await?;
    state.region_changed(ended).await;
    Ok(Json(item_json(&state, item, id).await?))
}

async fn remove(state: AppState, p: Principal, item: RegionItem, id: i64) -> Result<StatusCode, ApiError> {
    admin(&state, &p).delete(item, id).await?;
    state.region_changed([]).await;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST .../{id}/disable`, `POST .../{id}/enable` and `DELETE .../{id}` of each kind.
macro_rules! lifecycle {
    ($($item:ident: $disable:ident, $enable:ident, $delete:ident;)+) => {$(
        pub(super) async fn $disable(
            State(state): State<AppState>,
            Admin(p): Admin,
            Path(id): Path<i64>,
        ) -> Result<Json<serde_json::Value>, ApiError> {
            switch(state, p, RegionItem::$item, id, true).await
        }

        pub(super) async fn $enable(
            State(state): State<AppState>,
            Admin(p): Admin,
            Path(id): Path<i64>,
        ) -> Result<Json<serde_json::Value>, ApiError> {
            switch(state, p, RegionItem::$item, id, false).await
        }

        pub(super) async fn $delete(
            State(state): State<AppState>,
            Admin(p): Admin,
            Path(id): Path<i64>,
        ) -> Result<StatusCode, ApiError> {
            remove(state, p, RegionItem::$item, id).await
        }
    )+};
}

lifecycle! {
    Town: disable_town, enable_town, delete_town;
    Village: disable_village, enable_village, delete_village;
    Window: disable_window, enable_window, delete_window;
    Matter: disable_matter, enable_matter, delete_matter;
}

/// The latest administrative changes (who, when, what), newest first.
pub(super) async fn changes(
    State(state): State<AppState>,
    _: Admin,
) -> Result<Json<Vec<crate::db::AccessRow>>, ApiError> {
    Ok(Json(state.db.run(|db| db.admin_changes(200)).await?))
}
