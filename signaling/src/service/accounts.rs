//! Staff accounts and kiosk devices, as the county administrator manages them (issue 9): the
//! rules (who may have which role where, what may be deleted, temporary passwords, one-time
//! enrolment codes, device tokens that expire and rotate), each change written with its entry
//! in the audit record in one transaction.
//!
//! Every function is blocking (argon2, SQLite): call it through `Db::run`. What a change ends
//! is returned as token hashes (the edge closes their sockets: `AppState::tokens_ended`);
//! whether the queue's topology changed is the edge's to act on (`engine.reload_topology`).

use rand::Rng;
use rand::rngs::OsRng;
use serde_json::{Value, json};

use crate::auth::{self, HashPermit};
use crate::case::{ActorKind, EventActor};
use crate::db::{AccountFields, AccountRow, DataError, Db, DeviceRow, Reference, Tx};
use crate::error::{Error, Rejection};
use crate::identity::{Principal, Role};

/// Characters of a temporary password: no 0/O, 1/l/I look-alikes.
const PASSWORD_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// Length of a temporary password.
pub const TEMPORARY_PASSWORD_LEN: usize = 12;
/// Shortest password a user may choose.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Digits of an enrolment code.
pub const ENROLMENT_CODE_DIGITS: usize = 8;

/// What an administrative change was made to, and how (the audit record's words).
pub use crate::audit::{AdminItem as Item, AdminVerb as Verb};

/// Records one administrative change in the audit record, inside the change's transaction.
/// `detail` carries no personal data (ids, roles, flags; never names, passwords or tokens).
fn record(
    tx: &Tx<'_>,
    at_ms: u64,
    actor: &EventActor,
    item: Item,
    verb: Verb,
    id: i64,
    detail: Value,
) -> Result<(), DataError> {
    tx.record_admin_change(at_ms, actor, &crate::audit::AdminChange::new(item, verb, id, detail)).map(drop)
}

/// The actor of a change made by a staff member.
pub fn actor_of(p: &Principal) -> EventActor {
    match p {
        Principal::Kiosk { kiosk_id, name, .. } => EventActor::kiosk(*kiosk_id, name.clone()),
        Principal::Staff { user_id, name, .. } => {
            EventActor { kind: ActorKind::Staff, id: Some(*user_id), name: name.clone() }
        }
    }
}

/// A fresh temporary password ([`TEMPORARY_PASSWORD_LEN`] characters of an unambiguous alphabet).
pub fn temporary_password() -> String {
    (0..TEMPORARY_PASSWORD_LEN)
        .map(|_| char::from(PASSWORD_ALPHABET[OsRng.gen_range(0..PASSWORD_ALPHABET.len())]))
        .collect()
}

/// A fresh enrolment code: [`ENROLMENT_CODE_DIGITS`] random digits.
pub fn enrolment_code() -> String {
    format!("{:08}", OsRng.gen_range(0..100_000_000u32))
}

/// The code as shown to people: `1234-5678`.
pub fn shown_code(code: &str) -> String {
    if code.len() == ENROLMENT_CODE_DIGITS && code.is_ascii() {
        format!("{}-{}", &code[..4], &code[4..])
    } else {
        code.to_string()
    }
}

/// The digits of a code as typed (`1234-5678`, `1234 5678`, full-width digits are not
/// accepted), or `None` unless exactly [`ENROLMENT_CODE_DIGITS`] digits remain.
pub fn normalize_code(typed: &str) -> Option<String> {
    if typed.len() > 32 {
        return None;
    }
    let digits: String = typed.chars().filter(|c| !matches!(c, '-' | ' ' | '\u{3000}')).collect();
    (digits.len() == ENROLMENT_CODE_DIGITS && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// The enrolment code's hash as stored (domain-separated from token hashes).
fn code_hash(code: &str) -> String {
    auth::token_hash(&format!("enrol:{code}"))
}

/// A user name: 2-64 characters of lower-case letters, digits, `.`, `_`, `-`.
pub fn check_username(name: &str) -> Result<String, Rejection> {
    let n = name.trim();
    let ok = (2..=64).contains(&n.len())
        && n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'));
    if !ok {
        return Err(Rejection::invalid("用户名:2-64 个小写字母、数字或 . _ - (username: 2-64 of a-z 0-9 . _ -)"));
    }
    Ok(n.to_string())
}

/// A display name or device name: 1-`max` characters, no control characters.
fn check_name(value: &str, max: usize, what: &str) -> Result<String, Rejection> {
    let t = value.trim();
    if t.is_empty() || t.chars().count() > max || t.chars().any(char::is_control) {
        return Err(Rejection::invalid(format!("{what}:1-{max} 个字符 (1 to {max} characters)")));
    }
    Ok(t.to_string())
}

/// Which places a role needs: approvers a town and a window of it; chiefs a town (a window of
/// it optional); dispatchers a town and no window; supervisors no window (a town limits them
/// to it); administrators neither. Pure: `window_town` is the town of the given window.
pub fn check_places(
    role: Role,
    town_id: Option<i64>,
    window_id: Option<i64>,
    window_town: Option<i64>,
) -> Result<(), Rejection> {
    let bad = |m: &str| Err(Rejection::invalid(m.to_string()));
    match role {
        Role::Approver if town_id.is_none() || window_id.is_none() => {
            bad("窗口工作人员必须选择乡镇和窗口 (an approver needs a town and a window)")
        }
        Role::Chief | Role::Dispatcher if town_id.is_none() => bad("请选择乡镇 (this role needs a town)"),
        Role::Dispatcher if window_id.is_some() => bad("调度员不属于某个窗口 (a dispatcher has no window)"),
        Role::Supervisor if window_id.is_some() => bad("督查人员不属于某个窗口 (a supervisor has no window)"),
        Role::Admin if town_id.is_some() || window_id.is_some() => {
            bad("管理员面向全县,不选乡镇和窗口 (an administrator has no town or window)")
        }
        _ if window_id.is_some() && window_town != town_id => {
            bad("所选窗口不在所选乡镇 (the window is not in that town)")
        }
        _ => Ok(()),
    }
}

/// The refusal of a delete that something refers to: says what, and that 停用 is the way.
pub fn in_use(what: &str, refs: &[Reference]) -> Rejection {
    let words: Vec<&str> = refs.iter().map(|r| r.word()).collect();
    Rejection::conflict(
        "in_use",
        format!("该{what}已有{},不能删除,请改为停用 (in use: disable it instead)", words.join("、")),
    )
}

fn not_found(what: &str) -> Error {
    Rejection::not_found(what).into()
}

/// A write whose checks may refuse: `Ok(Err(_))` wrote nothing.
fn write<T>(db: &Db, f: impl FnOnce(&Tx<'_>) -> Result<Result<T, Rejection>, DataError>) -> Result<T, Error> {
    db.write(f)?.map_err(Error::from)
}

// --- accounts ----------------------------------------------------------------------------------

/// What the administrator sends for an account.
#[derive(Debug, Clone)]
pub struct AccountInput {
    pub display_name: String,
    pub role: Role,
    pub town_id: Option<i64>,
    pub window_id: Option<i64>,
}

fn account_fields(tx: &Tx<'_>, input: &AccountInput) -> Result<Result<AccountFields, Rejection>, DataError> {
    let display_name = match check_name(&input.display_name, 64, "姓名") {
        Ok(n) => n,
        Err(r) => return Ok(Err(r)),
    };
    if let Some(t) = input.town_id
        && !tx.town_exists(t)?
    {
        return Ok(Err(Rejection::invalid("没有这个乡镇 (unknown town_id)")));
    }
    let window_town = match input.window_id {
        Some(w) => match tx.window_town(w)? {
            Some(t) => Some(t),
            None => return Ok(Err(Rejection::invalid("没有这个窗口 (unknown window_id)"))),
        },
        None => None,
    };
    if let Err(r) = check_places(input.role, input.town_id, input.window_id, window_town) {
        return Ok(Err(r));
    }
    Ok(Ok(AccountFields { display_name, role: input.role, town_id: input.town_id, window_id: input.window_id }))
}

fn detail_of(f: &AccountFields) -> Value {
    json!({"role": f.role.as_str(), "town_id": f.town_id, "window_id": f.window_id})
}

/// A new account with a temporary password it must change at first login.
pub fn create_user(
    db: &Db,
    permit: &HashPermit,
    actor: &EventActor,
    username: &str,
    input: &AccountInput,
    now_ms: u64,
) -> Result<(AccountRow, String), Error> {
    let username = check_username(username)?;
    let password = temporary_password();
    let hash = auth::hash_password(permit, &password)?;
    let row = write(db, |tx| {
        let f = match account_fields(tx, input)? {
            Ok(f) => f,
            Err(r) => return Ok(Err(r)),
        };
        if tx.username_taken(&username)? {
            return Ok(Err(Rejection::conflict("conflict", "用户名已被使用 (username taken)")));
        }
        let id = tx.insert_account(&username, &f, &hash)?;
        record(tx, now_ms, actor, Item::User, Verb::Created, id, detail_of(&f))?;
        tx.account(id)?.ok_or_else(|| DataError::NotFound(format!("user {id}"))).map(Ok)
    })?;
    Ok((row, password))
}

/// Changes name, role and places. A changed role or place ends the user's sessions (their
/// pages log in again with what they may now do); returns the ended token hashes.
pub fn update_user(
    db: &Db,
    actor: &EventActor,
    user_id: i64,
    input: &AccountInput,
    now_ms: u64,
) -> Result<(AccountRow, Vec<String>), Error> {
    write(db, |tx| {
        let Some(old) = tx.account(user_id)? else { return Ok(Err(Rejection::not_found("user"))) };
        let f = match account_fields(tx, input)? {
            Ok(f) => f,
            Err(r) => return Ok(Err(r)),
        };
        if actor.id == Some(user_id) && f.role != old.role {
            return Ok(Err(Rejection::invalid("不能改变自己的角色 (you cannot change your own role)")));
        }
        tx.update_account(user_id, &f)?;
        let moved = (old.role, old.town_id, old.window_id) != (f.role, f.town_id, f.window_id);
        let ended = if moved { tx.end_sessions(user_id, None)? } else { Vec::new() };
        record(tx, now_ms, actor, Item::User, Verb::Updated, user_id, detail_of(&f))?;
        let row = tx.account(user_id)?.ok_or_else(|| DataError::NotFound(format!("user {user_id}")))?;
        Ok(Ok((row, ended)))
    })
}

/// Disables (every session ends at once; login refused) or enables an account.
pub fn set_user_disabled(
    db: &Db,
    actor: &EventActor,
    user_id: i64,
    disabled: bool,
    now_ms: u64,
) -> Result<(AccountRow, Vec<String>), Error> {
    write(db, |tx| {
        let Some(old) = tx.account(user_id)? else { return Ok(Err(Rejection::not_found("user"))) };
        if disabled && actor.id == Some(user_id) {
            return Ok(Err(Rejection::invalid("不能停用自己的账号 (you cannot disable your own account)")));
        }
        if old.disabled == disabled {
            return Ok(Ok((old, Vec::new())));
        }
        tx.set_account_disabled(user_id, disabled.then_some(now_ms))?;
        let ended = if disabled { tx.end_sessions(user_id, None)? } else { Vec::new() };
        let verb = if disabled { Verb::Disabled } else { Verb::Enabled };
        record(tx, now_ms, actor, Item::User, verb, user_id, json!({}))?;
        let row = tx.account(user_id)?.ok_or_else(|| DataError::NotFound(format!("user {user_id}")))?;
        Ok(Ok((row, ended)))
    })
}

/// Deletes an account nothing refers to (else 409 `in_use`: disable it instead); returns the
/// ended token hashes.
pub fn delete_user(db: &Db, actor: &EventActor, user_id: i64, now_ms: u64) -> Result<Vec<String>, Error> {
    write(db, |tx| {
        if tx.account(user_id)?.is_none() {
            return Ok(Err(Rejection::not_found("user")));
        }
        if actor.id == Some(user_id) {
            return Ok(Err(Rejection::invalid("不能删除自己的账号 (you cannot delete your own account)")));
        }
        let refs = tx.account_references(user_id)?;
        if !refs.is_empty() {
            return Ok(Err(in_use("账号", &refs)));
        }
        let ended = tx.end_sessions(user_id, None)?;
        tx.delete_account(user_id)?;
        record(tx, now_ms, actor, Item::User, Verb::Deleted, user_id, json!({}))?;
        Ok(Ok(ended))
    })
}

/// A new temporary password, to be changed at the next login; every session of the user ends.
pub fn reset_password(
    db: &Db,
    permit: &HashPermit,
    actor: &EventActor,
    user_id: i64,
    now_ms: u64,
) -> Result<(String, Vec<String>), Error> {
    let password = temporary_password();
    let hash = auth::hash_password(permit, &password)?;
    let ended = write(db, |tx| {
        if tx.account(user_id)?.is_none() {
            return Ok(Err(Rejection::not_found("user")));
        }
        tx.set_password(user_id, &hash, true)?;
        let ended = tx.end_sessions(user_id, None)?;
        record(tx, now_ms, actor, Item::User, Verb::PasswordReset, user_id, json!({}))?;
        Ok(Ok(ended))
    })?;
    Ok((password, ended))
}

/// A password change as the user asks it: the password now, and the one wanted.
#[derive(Clone, Copy)]
pub struct PasswordChange<'a> {
    pub old: &'a str,
    pub new: &'a str,
}

/// The user changes their own password (`POST /api/password`): the old one must match, the
/// new one has at least [`MIN_PASSWORD_CHARS`] characters and differs from it. The flag
/// `must_change_password` clears; the user's other sessions end (returned), this one stays.
pub fn change_password(
    db: &Db,
    permit: &HashPermit,
    actor: &EventActor,
    user_id: i64,
    session_hash: &str,
    change: PasswordChange<'_>,
    now_ms: u64,
) -> Result<Vec<String>, Error> {
    let PasswordChange { old: old_password, new: new_password } = change;
    if new_password.chars().count() < MIN_PASSWORD_CHARS || new_password.len() > auth::MAX_SECRET_LEN {
        return Err(Rejection::invalid(format!(
            "新密码至少 {MIN_PASSWORD_CHARS} 个字符 (the new password needs at least {MIN_PASSWORD_CHARS} characters)"
        ))
        .into());
    }
    if new_password == old_password {
        return Err(Rejection::invalid("新密码不能和原密码相同 (the new password equals the old one)").into());
    }
    let stored = db.password_of_user(user_id)?.ok_or(DataError::Unauthorized)?;
    if !auth::verify_password(permit, &stored, old_password) {
        return Err(Rejection::new(
            crate::error::RejectKind::Invalid,
            "bad_credentials",
            "原密码不对 (the old password is wrong)",
        )
        .into());
    }
    let hash = auth::hash_password(permit, new_password)?;
    write(db, |tx| {
        tx.set_password(user_id, &hash, false)?;
        let ended = tx.end_sessions(user_id, Some(session_hash))?;
        record(tx, now_ms, actor, Item::User, Verb::Updated, user_id, json!({"password_changed": true}))?;
        Ok(Ok(ended))
    })
}

// --- kiosks ------------------------------------------------------------------------------------

/// A new kiosk device of a village, not enrolled (no usable token until it is).
pub fn create_kiosk(db: &Db, actor: &EventActor, village_id: i64, name: &str, now_ms: u64) -> Result<DeviceRow, Error> {
    let name = check_name(name, 64, "设备名称")?;
    let unusable = auth::token_hash(&auth::new_token());
    write(db, |tx| {
        if !tx.village_exists(village_id)? {
            return Ok(Err(Rejection::invalid("没有这个村 (unknown village_id)")));
        }
        if tx.kiosk_name_taken(village_id, &name, None)? {
            return Ok(Err(Rejection::conflict("conflict", "这个村已有同名设备 (name taken in this village)")));
        }
        let id = tx.insert_device(village_id, &name, &unusable)?;
        record(tx, now_ms, actor, Item::Kiosk, Verb::Created, id, json!({"village_id": village_id}))?;
        let row = tx.device(id, now_ms)?.ok_or_else(|| DataError::NotFound(format!("kiosk {id}")))?;
        Ok(Ok(row))
    })
}

pub fn rename_kiosk(db: &Db, actor: &EventActor, kiosk_id: i64, name: &str, now_ms: u64) -> Result<DeviceRow, Error> {
    let name = check_name(name, 64, "设备名称")?;
    write(db, |tx| {
        let Some(old) = tx.device(kiosk_id, now_ms)? else { return Ok(Err(Rejection::not_found("kiosk"))) };
        if tx.kiosk_name_taken(old.village_id, &name, Some(kiosk_id))? {
            return Ok(Err(Rejection::conflict("conflict", "这个村已有同名设备 (name taken in this village)")));
        }
        tx.rename_device(kiosk_id, &name)?;
        record(tx, now_ms, actor, Item::Kiosk, Verb::Updated, kiosk_id, json!({}))?;
        let row = tx.device(kiosk_id, now_ms)?.ok_or_else(|| DataError::NotFound(format!("kiosk {kiosk_id}")))?;
        Ok(Ok(row))
    })
}

/// Disables (its token is refused and its socket closes: the returned hash) or enables a
/// kiosk. An open enrolment code of a disabled kiosk is dropped.
pub fn set_kiosk_disabled(
    db: &Db,
    actor: &EventActor,
    kiosk_id: i64,
    disabled: bool,
    now_ms: u64,
) -> Result<(DeviceRow, Option<String>), Error> {
    write(db, |tx| {
        let Some(old) = tx.device(kiosk_id, now_ms)? else { return Ok(Err(Rejection::not_found("kiosk"))) };
        if old.disabled == disabled {
            return Ok(Ok((old, None)));
        }
        let hash = tx.set_device_disabled(kiosk_id, disabled.then_some(now_ms))?;
        if disabled {
            tx.clear_enrolment(kiosk_id)?;
        }
        let verb = if disabled { Verb::Disabled } else { Verb::Enabled };
        record(tx, now_ms, actor, Item::Kiosk, verb, kiosk_id, json!({}))?;
        let row = tx.device(kiosk_id, now_ms)?.ok_or_else(|| DataError::NotFound(format!("kiosk {kiosk_id}")))?;
        Ok(Ok((row, disabled.then_some(hash))))
    })
}

/// Deletes a kiosk nothing refers to (else 409 `in_use`); returns its token hash.
pub fn delete_kiosk(db: &Db, actor: &EventActor, kiosk_id: i64, now_ms: u64) -> Result<String, Error> {
    write(db, |tx| {
        if tx.device(kiosk_id, now_ms)?.is_none() {
            return Ok(Err(Rejection::not_found("kiosk")));
        }
        let refs = tx.device_references(kiosk_id)?;
        if !refs.is_empty() {
            return Ok(Err(in_use("设备", &refs)));
        }
        let hash = tx.delete_device(kiosk_id)?;
        record(tx, now_ms, actor, Item::Kiosk, Verb::Deleted, kiosk_id, json!({}))?;
        Ok(Ok(hash))
    })
}

/// A one-time enrolment code for the kiosk, valid `valid_ms` (replacing any earlier one).
/// Returns the code (digits) and its expiry.
pub fn issue_enrolment(
    db: &Db,
    actor: &EventActor,
    kiosk_id: i64,
    valid_ms: u64,
    now_ms: u64,
) -> Result<(String, u64), Error> {
    let expires_at_ms = now_ms.saturating_add(valid_ms);
    write(db, |tx| {
        let Some(kiosk) = tx.device(kiosk_id, now_ms)? else { return Ok(Err(Rejection::not_found("kiosk"))) };
        if kiosk.disabled {
            return Ok(Err(Rejection::conflict("disabled", "设备已停用,请先启用 (the kiosk is disabled)")));
        }
        // A clash with another open code is rare (10^8 codes); draw again.
        let mut code = enrolment_code();
        for _ in 0..8 {
            if !tx.enrolment_code_taken(&code_hash(&code))? {
                break;
            }
            code = enrolment_code();
        }
        tx.set_enrolment(kiosk_id, &code_hash(&code), expires_at_ms, actor.id, now_ms)?;
        record(
            tx,
            now_ms,
            actor,
            Item::Kiosk,
            Verb::EnrolmentIssued,
            kiosk_id,
            json!({"expires_at_ms": expires_at_ms}),
        )?;
        Ok(Ok((code, expires_at_ms)))
    })
}

/// The kiosk's token becomes invalid at once (its socket closes: the returned hash); it
/// needs a new enrolment.
pub fn revoke_kiosk(db: &Db, actor: &EventActor, kiosk_id: i64, now_ms: u64) -> Result<(DeviceRow, String), Error> {
    let unusable = auth::token_hash(&auth::new_token());
    write(db, |tx| {
        if tx.device(kiosk_id, now_ms)?.is_none() {
            return Ok(Err(Rejection::not_found("kiosk")));
        }
        let old = tx.set_device_token(kiosk_id, &unusable, None, false)?;
        record(tx, now_ms, actor, Item::Kiosk, Verb::Revoked, kiosk_id, json!({}))?;
        let row = tx.device(kiosk_id, now_ms)?.ok_or_else(|| DataError::NotFound(format!("kiosk {kiosk_id}")))?;
        Ok(Ok((row, old)))
    })
}

/// What an enrolment gives the kiosk page.
#[derive(Debug, Clone)]
pub struct Enrolled {
    pub token: String,
    pub expires_at_ms: u64,
    pub kiosk_id: i64,
    /// The token the kiosk had before (its socket closes).
    pub old_hash: String,
}

fn bad_code() -> Error {
    Rejection::new(
        crate::error::RejectKind::Invalid,
        "bad_enrolment_code",
        "开通码不对或已过期,请向管理员要一个新的 (wrong, used or expired enrolment code)",
    )
    .into()
}

/// Exchanges a one-time code for a new device token valid `token_ms`; the kiosk's old token
/// stops working. A wrong, used or expired code is `bad_enrolment_code`.
pub fn enrol(db: &Db, typed_code: &str, token_ms: u64, now_ms: u64) -> Result<Enrolled, Error> {
    let code = normalize_code(typed_code).ok_or_else(bad_code)?;
    let token = auth::new_token();
    let expires_at_ms = now_ms.saturating_add(token_ms);
    let hash = code_hash(&code);
    let done = db.write(|tx| {
        let Some(kiosk_id) = tx.take_enrolment(&hash, now_ms)? else { return Ok(None) };
        let old_hash = tx.set_device_token(kiosk_id, &auth::token_hash(&token), Some(expires_at_ms), true)?;
        let actor = EventActor::kiosk(kiosk_id, String::new());
        record(tx, now_ms, &actor, Item::Kiosk, Verb::Enrolled, kiosk_id, json!({"expires_at_ms": expires_at_ms}))?;
        Ok(Some((kiosk_id, old_hash)))
    })?;
    // A code that matched but had expired was removed: that write is committed too.
    let (kiosk_id, old_hash) = done.ok_or_else(bad_code)?;
    Ok(Enrolled { token, expires_at_ms, kiosk_id, old_hash })
}

/// The kiosk itself asks for a new token (`POST /api/kiosk/token`): valid `token_ms` from now;
/// the old one (`old_hash`) ends. Returns the token and its expiry.
pub fn rotate_kiosk_token(
    db: &Db,
    kiosk: &Principal,
    old_hash: &str,
    token_ms: u64,
    now_ms: u64,
) -> Result<(String, u64), Error> {
    let Principal::Kiosk { kiosk_id, .. } = kiosk else {
        return Err(Rejection::forbidden("token rotation is for kiosks").into());
    };
    let token = auth::new_token();
    let expires_at_ms = now_ms.saturating_add(token_ms);
    write(db, |tx| {
        let old = tx.set_device_token(*kiosk_id, &auth::token_hash(&token), Some(expires_at_ms), true)?;
        if old != old_hash {
            // Another rotation or an enrolment came first: keep what it gave.
            return Err(DataError::Unauthorized);
        }
        record(
            tx,
            now_ms,
            &actor_of(kiosk),
            Item::Kiosk,
            Verb::TokenRotated,
            *kiosk_id,
            json!({"expires_at_ms": expires_at_ms}),
        )?;
        Ok(Ok(()))
    })?;
    Ok((token, expires_at_ms))
}

/// The names an enrolled kiosk page shows: its own and its village's.
pub fn kiosk_names(db: &Db, kiosk_id: i64) -> Result<(String, i64, String), Error> {
    let kiosk = db.kiosk(kiosk_id)?.ok_or_else(|| not_found("kiosk"))?;
    let village = db.village(kiosk.village_id)?.ok_or_else(|| not_found("village"))?;
    Ok((kiosk.name, village.id, village.name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{VillageKind, WindowKind};

    const MIN: u64 = 60_000;

    fn admin() -> EventActor {
        EventActor { kind: ActorKind::Staff, id: None, name: "管理员".into() }
    }

    struct Region {
        db: Db,
        town: i64,
        other_town: i64,
        window: i64,
        village: i64,
    }

    fn region() -> Region {
        let db = Db::open_in_memory().unwrap();
        let (town, other_town, window, village) = db
            .write(|tx| {
                let t = tx.upsert_town("甲镇", false)?.id();
                let t2 = tx.upsert_town("乙镇", false)?.id();
                let v = tx.upsert_village(t, "一村", VillageKind::Village)?.id();
                let w = tx.upsert_window(t, "民政窗口", WindowKind::CivilAffairs, true)?.id();
                Ok((t, t2, w, v))
            })
            .unwrap();
        Region { db, town, other_town, window, village }
    }

    fn approver(r: &Region) -> AccountInput {
        AccountInput {
            display_name: "张三".into(),
            role: Role::Approver,
            town_id: Some(r.town),
            window_id: Some(r.window),
        }
    }

    #[test]
    fn places_follow_the_role() {
        assert!(check_places(Role::Approver, Some(1), Some(2), Some(1)).is_ok());
        assert!(check_places(Role::Approver, Some(1), None, None).is_err());
        assert!(check_places(Role::Approver, Some(1), Some(2), Some(3)).is_err(), "window of another town");
        assert!(check_places(Role::Chief, Some(1), None, None).is_ok());
        assert!(check_places(Role::Chief, None, None, None).is_err());
        assert!(check_places(Role::Dispatcher, Some(1), Some(2), Some(1)).is_err());
        assert!(check_places(Role::Supervisor, None, None, None).is_ok());
        assert!(check_places(Role::Supervisor, Some(1), None, None).is_ok());
        assert!(check_places(Role::Supervisor, Some(1), Some(2), Some(1)).is_err());
        assert!(check_places(Role::Admin, None, None, None).is_ok());
        assert!(check_places(Role::Admin, Some(1), None, None).is_err());
    }

    #[test]
    fn usernames_codes_and_passwords() {
        assert_eq!(check_username(" li.juan-2 ").unwrap(), "li.juan-2");
        for bad in ["", "a", "LiJuan", "张三", "a b", &"x".repeat(65)] {
            assert!(check_username(bad).is_err(), "{bad:?}");
        }
        let p = temporary_password();
        assert_eq!(p.len(), TEMPORARY_PASSWORD_LEN);
        assert!(p.bytes().all(|b| PASSWORD_ALPHABET.contains(&b)));
        assert!(!p.contains(['0', 'O', '1', 'l', 'I']));
        assert_ne!(temporary_password(), p);
        let c = enrolment_code();
        assert_eq!(c.len(), 8);
        assert_eq!(normalize_code(&shown_code(&c)).unwrap(), c);
        assert_eq!(normalize_code("1234 5678").as_deref(), Some("12345678"));
        assert_eq!(shown_code("12345678"), "1234-5678");
        for bad in ["1234567", "123456789", "1234-567a", "１２３４５６７８", ""] {
            assert!(normalize_code(bad).is_none(), "{bad:?}");
        }
        let r = in_use("账号", &[Reference::Cases, Reference::Calls]);
        assert_eq!(r.code, "in_use");
        assert!(r.message.contains("案件、通话记录") && r.message.contains("请改为停用"), "{}", r.message);
    }

    #[test]
    fn a_new_account_must_change_its_temporary_password() {
        let r = region();
        let (row, temp) = create_user(&r.db, &auth::test_permit(), &admin(), "zhangsan", &approver(&r), 5).unwrap();
        assert!(row.must_change_password && !row.disabled && row.last_login_ms.is_none());
        let login = auth::login(&r.db, &auth::test_permit(), "zhangsan", &temp, 10, 12).unwrap();
        assert!(login.must_change_password);
        let e = auth::resolve_token(&r.db, &login.token, 11).unwrap_err();
        assert!(matches!(e, DataError::PasswordChangeRequired), "{e}");
        assert!(auth::resolve(&r.db, &login.token, 11).unwrap().must_change_password);
        assert_eq!(r.db.account(row.id).unwrap().unwrap().last_login_ms, Some(10));

        let actor = actor_of(&login.principal);
        let hash = auth::token_hash(&login.token);
        // Too short, equal to the old one, wrong old password: refused, nothing changes.
        for (old, new, code) in [
            (temp.as_str(), "short", "bad_request"),
            (temp.as_str(), temp.as_str(), "bad_request"),
            ("wrong-password", "a-good-new-one", "bad_credentials"),
        ] {
            match change_password(&r.db, &auth::test_permit(), &actor, row.id, &hash, PasswordChange { old, new }, 12) {
                Err(Error::Rejected(rej)) => assert_eq!(rej.code, code),
                other => panic!("{other:?}"),
            }
        }
        let other = auth::login(&r.db, &auth::test_permit(), "zhangsan", &temp, 13, 12).unwrap();
        let ended = change_password(
            &r.db,
            &auth::test_permit(),
            &actor,
            row.id,
            &hash,
            PasswordChange { old: &temp, new: "a-good-new-one" },
            14,
        )
        .unwrap();
        assert_eq!(ended, vec![auth::token_hash(&other.token)], "the other session ends, this one stays");
        assert!(matches!(auth::resolve_token(&r.db, &login.token, 15).unwrap(), Principal::Staff { .. }));
        assert!(auth::login(&r.db, &auth::test_permit(), "zhangsan", &temp, 16, 12).unwrap_err().is_unauthorized());
        assert!(
            !auth::login(&r.db, &auth::test_permit(), "zhangsan", "a-good-new-one", 16, 12)
                .unwrap()
                .must_change_password
        );
    }

    #[test]
    fn disabling_ends_sessions_and_refuses_login_and_the_queue_forgets() {
        let r = region();
        let (row, temp) = create_user(&r.db, &auth::test_permit(), &admin(), "zhangsan", &approver(&r), 5).unwrap();
        let login = auth::login(&r.db, &auth::test_permit(), "zhangsan", &temp, 10, 12).unwrap();
        assert_eq!(r.db.topology().unwrap().approvers.len(), 1);
        let (row2, ended) = set_user_disabled(&r.db, &admin(), row.id, true, 20).unwrap();
        assert!(row2.disabled);
        assert_eq!(ended, vec![auth::token_hash(&login.token)]);
        assert!(auth::resolve_token(&r.db, &login.token, 21).unwrap_err().is_unauthorized());
        assert!(auth::login(&r.db, &auth::test_permit(), "zhangsan", &temp, 22, 12).unwrap_err().is_unauthorized());
        assert!(r.db.topology().unwrap().approvers.is_empty());
        let (row3, ended) = set_user_disabled(&r.db, &admin(), row.id, false, 30).unwrap();
        assert!(!row3.disabled && ended.is_empty());
        assert!(auth::login(&r.db, &auth::test_permit(), "zhangsan", &temp, 31, 12).is_ok());
        assert_eq!(r.db.topology().unwrap().approvers.len(), 1);
        // Nobody disables their own account.
        let me = EventActor { id: Some(row.id), ..admin() };
        assert!(matches!(set_user_disabled(&r.db, &me, row.id, true, 40), Err(Error::Rejected(_))));
    }

    #[test]
    fn roles_and_places_are_checked_and_names_unique() {
        let r = region();
        let wrong_town = AccountInput { town_id: Some(r.other_town), ..approver(&r) };
        assert!(matches!(
            create_user(&r.db, &auth::test_permit(), &admin(), "a-1", &wrong_town, 1),
            Err(Error::Rejected(_))
        ));
        create_user(&r.db, &auth::test_permit(), &admin(), "a-1", &approver(&r), 1).unwrap();
        match create_user(&r.db, &auth::test_permit(), &admin(), "a-1", &approver(&r), 2) {
            Err(Error::Rejected(rej)) => assert_eq!(rej.code, "conflict"),
            other => panic!("{other:?}"),
        }
        let chief = AccountInput { role: Role::Chief, window_id: None, ..approver(&r) };
        let (row, _) = create_user(&r.db, &auth::test_permit(), &admin(), "c-1", &chief, 3).unwrap();
        let (row, _) = update_user(&r.db, &admin(), row.id, &approver(&r), 4).unwrap();
        assert_eq!((row.role, row.window_id), (Role::Approver, Some(r.window)));
    }

    #[test]
    fn an_account_without_history_is_deleted_but_not_ones_own() {
        let r = region();
        let (row, temp) = create_user(&r.db, &auth::test_permit(), &admin(), "a-1", &approver(&r), 1).unwrap();
        let login = auth::login(&r.db, &auth::test_permit(), "a-1", &temp, 2, 12).unwrap();
        let me = EventActor { id: Some(row.id), ..admin() };
        assert!(matches!(delete_user(&r.db, &me, row.id, 3), Err(Error::Rejected(_))));
        assert_eq!(delete_user(&r.db, &admin(), row.id, 3).unwrap(), vec![auth::token_hash(&login.token)]);
        assert!(r.db.account(row.id).unwrap().is_none());
        assert!(
            matches!(delete_user(&r.db, &admin(), row.id, 4), Err(Error::Rejected(ref rej)) if rej.code == "not_found")
        );
    }

    #[test]
    fn a_kiosk_enrols_once_with_its_code_and_its_token_expires_and_rotates() {
        let r = region();
        let k = create_kiosk(&r.db, &admin(), r.village, "一村服务室", 0).unwrap();
        assert!(!k.enrolled && k.enrolment.is_none());
        let (code, expires) = issue_enrolment(&r.db, &admin(), k.id, 30 * MIN, 1_000).unwrap();
        assert_eq!(expires, 1_000 + 30 * MIN);
        assert_eq!(r.db.device(k.id, 1_000).unwrap().unwrap().enrolment.unwrap().expires_at_ms, expires);
        // A wrong code, then the right one (typed 4-4), then the right one again.
        let wrong = if code == "00000000" { "1111-1111" } else { "0000-0000" };
        assert!(
            matches!(enrol(&r.db, wrong, 100 * MIN, 2_000), Err(Error::Rejected(ref rej)) if rej.code == "bad_enrolment_code")
        );
        let e = enrol(&r.db, &shown_code(&code), 100 * MIN, 2_000).unwrap();
        assert_eq!(e.kiosk_id, k.id);
        assert!(
            matches!(enrol(&r.db, &code, 100 * MIN, 2_001), Err(Error::Rejected(ref rej)) if rej.code == "bad_enrolment_code")
        );
        let dev = r.db.device(k.id, 2_002).unwrap().unwrap();
        assert!(dev.enrolled && dev.enrolment.is_none());
        assert_eq!(dev.token_expires_at_ms, Some(2_000 + 100 * MIN));
        let p = auth::resolve_token(&r.db, &e.token, 3_000).unwrap();
        assert!(matches!(p, Principal::Kiosk { kiosk_id, .. } if kiosk_id == k.id));
        assert!(auth::resolve_token(&r.db, &e.token, 2_000 + 100 * MIN).unwrap_err().is_unauthorized(), "expired");

        // Rotation: a new token, the old one ends.
        let (t2, exp2) = rotate_kiosk_token(&r.db, &p, &auth::token_hash(&e.token), 100 * MIN, 5_000).unwrap();
        assert_eq!(exp2, 5_000 + 100 * MIN);
        assert!(auth::resolve_token(&r.db, &e.token, 5_001).unwrap_err().is_unauthorized());
        assert!(auth::resolve_token(&r.db, &t2, 5_001).is_ok());
        // A second rotation with the old token's hash changes nothing.
        assert!(rotate_kiosk_token(&r.db, &p, &auth::token_hash(&e.token), 100 * MIN, 5_002).is_err());
        assert!(auth::resolve_token(&r.db, &t2, 5_003).is_ok());

        // An expired code is refused and gone.
        let (code, _) = issue_enrolment(&r.db, &admin(), k.id, MIN, 10_000).unwrap();
        assert!(enrol(&r.db, &code, 100 * MIN, 10_000 + MIN).is_err());
        assert!(r.db.device(k.id, 0).unwrap().unwrap().enrolment.is_none());

        // Disabled: refused, out of the topology, no enrolment; revoked: refused.
        let (_, hash) = set_kiosk_disabled(&r.db, &admin(), k.id, true, 20_000).unwrap();
        assert_eq!(hash, Some(auth::token_hash(&t2)));
        assert!(auth::resolve_token(&r.db, &t2, 20_001).unwrap_err().is_unauthorized());
        assert!(r.db.topology().unwrap().kiosks.is_empty());
        assert!(issue_enrolment(&r.db, &admin(), k.id, MIN, 20_002).is_err());
        set_kiosk_disabled(&r.db, &admin(), k.id, false, 20_003).unwrap();
        assert!(auth::resolve_token(&r.db, &t2, 20_004).is_ok());
        let (row, old) = revoke_kiosk(&r.db, &admin(), k.id, 20_005).unwrap();
        assert_eq!(old, auth::token_hash(&t2));
        assert!(!row.enrolled && row.token_expires_at_ms.is_none());
        assert!(auth::resolve_token(&r.db, &t2, 20_006).unwrap_err().is_unauthorized());
        delete_kiosk(&r.db, &admin(), k.id, 20_007).unwrap();
        assert!(r.db.device(k.id, 0).unwrap().is_none());
    }
}
