//! Identity: argon2id passwords, random bearer tokens stored as SHA-256 hashes, staff login
//! sessions, and resolving a token to a [`Principal`].
//!
//! Tokens, passwords and names are never logged here. `login` (argon2) takes tens of
//! milliseconds of CPU: call it through `Db::run`, off the async threads. `resolve_token` and `logout` are
//! plain indexed lookups.

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};

use crate::db::{DataError, Db, Me};
use crate::identity::Principal;

/// Longest token or password accepted (anything longer is refused before hashing).
pub const MAX_SECRET_LEN: usize = 1024;

/// A successful login.
#[derive(Debug, Clone)]
pub struct LoginOk {
    /// The bearer token (64 hex chars); only its hash is stored.
    pub token: String,
    pub expires_at_ms: u64,
    pub principal: Principal,
    pub me: Me,
    /// The administrator set a temporary password: the user must choose a new one first.
    pub must_change_password: bool,
}

/// A resolved bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub principal: Principal,
    /// A staff session whose account must change its password before anything else.
    pub must_change_password: bool,
}

fn argon2() -> Argon2<'static> {
    // argon2id v19, default cost (19 MiB, t=2, p=1): the OWASP baseline.
    Argon2::default()
}

/// argon2id PHC string of `password`.
pub fn hash_password(password: &str) -> Result<String, DataError> {
    if password.len() > MAX_SECRET_LEN {
        return Err(DataError::Invalid(format!("password longer than {MAX_SECRET_LEN} bytes")));
    }
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| DataError::Hash(e.to_string()))
}

/// Is `hash` a PHC string that `verify_password` can check?
pub fn is_valid_password_hash(hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| h.algorithm.as_str().starts_with("argon2"))
}

/// Does `password` match the PHC string `hash`? A malformed hash never matches.
pub fn verify_password(hash: &str, password: &str) -> bool {
    if password.len() > MAX_SECRET_LEN {
        return false;
    }
    match PasswordHash::new(hash) {
        Ok(parsed) => argon2().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// A fresh random token: 32 bytes from the OS, as 64 lowercase hex characters.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// What is stored for a token: hex SHA-256 of its UTF-8 bytes.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Verified against for unknown usernames so that they cost as much as wrong passwords.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash_password(&new_token()).unwrap_or_else(|_| String::from("$argon2id$invalid")));

/// Checks username and password; on success stores a session valid for `ttl_hours` from
/// `now_ms` (config `auth.session_ttl_hours`). Unknown user and wrong password both give
/// [`DataError::Unauthorized`].
pub fn login(db: &Db, username: &str, password: &str, now_ms: u64, ttl_hours: u64) -> Result<LoginOk, DataError> {
    if username.is_empty() || username.len() > 256 || password.len() > MAX_SECRET_LEN {
        return Err(DataError::Unauthorized);
    }
    let found = db.password_hash_of(username)?;
    let (user_id, ok) = match &found {
        Some((id, hash)) => (*id, verify_password(hash, password)),
        None => {
            let _ = verify_password(&DUMMY_HASH, password);
            (0, false)
        }
    };
    if !ok {
        tracing::info!("login refused");
        return Err(DataError::Unauthorized);
    }
    let token = new_token();
    let expires_at_ms = now_ms.saturating_add(ttl_hours.max(1).saturating_mul(3_600_000));
    let hash = token_hash(&token);
    db.insert_session(&hash, user_id, now_ms, expires_at_ms)?;
    let session = db.session_of(&hash)?.ok_or_else(|| DataError::NotFound(format!("session of user {user_id}")))?;
    db.user_logged_in(user_id, now_ms)?;
    let me = db.me_of_user(user_id)?;
    tracing::info!(user_id, "login");
    Ok(LoginOk {
        token,
        expires_at_ms,
        principal: session.principal,
        me,
        must_change_password: session.must_change_password,
    })
}

/// A new session for the user of a live session (`POST /api/session/rotate`), valid for
/// `ttl_hours` from `now_ms`; the old session ends. Returns the new token, its expiry and the
/// old token's hash (its sockets close).
pub fn rotate_session(db: &Db, old_token: &str, now_ms: u64, ttl_hours: u64) -> Result<(String, u64), DataError> {
    let old_hash = token_hash(old_token);
    let session = db.session_of(&old_hash)?.ok_or(DataError::Unauthorized)?;
    if now_ms >= session.expires_at_ms {
        return Err(DataError::Unauthorized);
    }
    let token = new_token();
    let expires_at_ms = now_ms.saturating_add(ttl_hours.max(1).saturating_mul(3_600_000));
    db.replace_session(&old_hash, &token_hash(&token), session.principal.user_id(), now_ms, expires_at_ms)?;
    Ok((token, expires_at_ms))
}

/// Ends the session of `token` (unknown tokens: no error, nothing happens).
pub fn logout(db: &Db, token: &str) -> Result<(), DataError> {
    if token.is_empty() || token.len() > MAX_SECRET_LEN {
        return Ok(());
    }
    db.delete_session(&token_hash(token))?;
    Ok(())
}

/// The principal a bearer token stands for: a kiosk device token or a live staff session.
/// An expired session is deleted and gives [`DataError::Unauthorized`], like an unknown token;
/// so do a disabled account or kiosk and an expired kiosk token. A session whose account must
/// change its password gives [`DataError::PasswordChangeRequired`] (see [`resolve`]).
pub fn resolve_token(db: &Db, token: &str, now_ms: u64) -> Result<Principal, DataError> {
    let r = resolve(db, token, now_ms)?;
    if r.must_change_password {
        return Err(DataError::PasswordChangeRequired);
    }
    Ok(r.principal)
}

/// Like [`resolve_token`], but a session that must change its password resolves too, with
/// the flag set: for the routes that are open to it (`/api/me`, `/api/logout`, `/api/password`).
pub fn resolve(db: &Db, token: &str, now_ms: u64) -> Result<Resolved, DataError> {
    if token.is_empty() || token.len() > MAX_SECRET_LEN {
        return Err(DataError::Unauthorized);
    }
    let hash = token_hash(token);
    if let Some(principal) = db.kiosk_by_token_hash(&hash, now_ms)? {
        return Ok(Resolved { principal, must_change_password: false });
    }
    match db.session_of(&hash)? {
        Some(s) if now_ms < s.expires_at_ms => {
            Ok(Resolved { principal: s.principal, must_change_password: s.must_change_password })
        }
        Some(_) => {
            db.delete_session(&hash)?;
            Err(DataError::Unauthorized)
        }
        None => Err(DataError::Unauthorized),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{UserFields, VillageKind, WindowKind};
    use crate::identity::Role;

    const HOUR: u64 = 3_600_000;

    fn setup() -> (Db, String) {
        let db = Db::open_in_memory().unwrap();
        let kiosk_token = new_token();
        let pw = hash_password("correct horse").unwrap();
        db.write(|tx| {
            let t = tx.upsert_town("甲镇", false)?.id();
            let v = tx.upsert_village(t, "一村", VillageKind::Village)?.id();
            let w = tx.upsert_window(t, "民政窗口", WindowKind::CivilAffairs, true)?.id();
            tx.upsert_kiosk(v, "一村便民服务室", &token_hash(&kiosk_token))?;
            tx.upsert_user(&UserFields {
                username: "alice",
                display_name: "张三",
                role: Role::Approver,
                town_id: Some(t),
                window_id: Some(w),
                password_hash: &pw,
            })?;
            Ok(())
        })
        .unwrap();
        (db, kiosk_token)
    }

    #[test]
    fn password_hashing() {
        let h = hash_password("s3cret").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(is_valid_password_hash(&h));
        assert!(verify_password(&h, "s3cret"));
        assert!(!verify_password(&h, "s3cret "));
        assert!(!verify_password("not a hash", "s3cret"));
        assert!(!is_valid_password_hash("not a hash"));
        assert_ne!(hash_password("s3cret").unwrap(), h); // salted
    }

    #[test]
    fn tokens() {
        let t = new_token();
        assert_eq!(t.len(), 64);
        assert!(t.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(new_token(), t);
        assert_eq!(token_hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn kiosk_token_resolves() {
        let (db, tok) = setup();
        match resolve_token(&db, &tok, 0).unwrap() {
            p @ Principal::Kiosk { .. } => {
                assert_eq!(p.name(), "一村便民服务室");
                assert_eq!(p.role_str(), "kiosk");
                assert!(p.label().starts_with("kiosk:"));
                assert!(p.town_id().is_some());
                assert_eq!(db.me(&p).unwrap().village.unwrap().name, "一村");
            }
            p => panic!("{p:?}"),
        }
        assert!(resolve_token(&db, "nope", 0).unwrap_err().is_unauthorized());
        assert!(resolve_token(&db, "", 0).unwrap_err().is_unauthorized());
    }

    #[test]
    fn login_resolve_expire_logout() {
        let (db, _) = setup();
        let now = 1_000 * HOUR;
        let ok = login(&db, "alice", "correct horse", now, 12).unwrap();
        assert_eq!(ok.expires_at_ms, now + 12 * HOUR);
        assert_eq!((ok.me.role, ok.me.name.as_str()), ("approver", "张三"));
        assert_eq!(ok.me.window.as_ref().unwrap().name, "民政窗口");
        assert!(matches!(&ok.principal, Principal::Staff { role: Role::Approver, .. }));
        assert!(!ok.principal.is_county_wide());
        assert_eq!(ok.principal.role_str(), "approver");

        let p = resolve_token(&db, &ok.token, now + 11 * HOUR).unwrap();
        assert!(matches!(p, Principal::Staff { role: Role::Approver, window_id: Some(_), town_id: Some(_), .. }));

        // Expired: refused and deleted.
        let e = resolve_token(&db, &ok.token, now + 12 * HOUR).unwrap_err();
        assert!(e.is_unauthorized());
        assert!(db.session_by_token_hash(&token_hash(&ok.token)).unwrap().is_none());
        // Still refused even at an earlier clock: it is gone.
        assert!(resolve_token(&db, &ok.token, now).unwrap_err().is_unauthorized());

        let ok2 = login(&db, "alice", "correct horse", now, 12).unwrap();
        assert_ne!(ok2.token, ok.token);
        resolve_token(&db, &ok2.token, now).unwrap();
        logout(&db, &ok2.token).unwrap();
        assert!(resolve_token(&db, &ok2.token, now).unwrap_err().is_unauthorized());
        logout(&db, "unknown").unwrap();
    }

    #[test]
    fn bad_credentials_are_unauthorized() {
        let (db, _) = setup();
        assert!(login(&db, "alice", "wrong", 0, 1).unwrap_err().is_unauthorized());
        assert!(login(&db, "bob", "correct horse", 0, 1).unwrap_err().is_unauthorized());
        assert!(login(&db, "", "", 0, 1).unwrap_err().is_unauthorized());
        let long = "x".repeat(MAX_SECRET_LEN + 1);
        assert!(login(&db, "alice", &long, 0, 1).unwrap_err().is_unauthorized());
        // Errors say nothing about which part was wrong.
        assert_eq!(login(&db, "bob", "x", 0, 1).unwrap_err().to_string(), "unauthorized");
    }
}
