//! Identity: argon2id passwords, random bearer tokens stored as SHA-256 hashes, staff login
//! sessions, and resolving a token to a [`Principal`].
//!
//! Tokens, passwords and names are never logged here. `login` (argon2) takes tens of
//! milliseconds of CPU: call it through `Db::run`, off the async threads. `resolve_token` and `logout` are
//! plain indexed lookups.
//!
//! Every argon2 hash or verification holds a [`HashPermit`] from [`PasswordHashes`] (each uses
//! 19 MiB): the server has `limits.password_hashes_at_once` of them, so a login flood from many
//! addresses cannot run hundreds at once.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use argon2::password_hash::{self, Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
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

/// The bound on argon2 hashes at once (`limits.password_hashes_at_once`), and their memory:
/// each permit brings the 19 MiB an argon2id hash works in, kept for the next hash instead of
/// allocated anew, so the hashes of a flood hold `at_once` × 19 MiB, however many threads of
/// the blocking pool run them (freed buffers of that size would stay in each thread's malloc
/// arena).
#[derive(Clone)]
pub struct PasswordHashes {
    permits: Arc<Semaphore>,
    memory: Arc<Mutex<Vec<Memory>>>,
    wait: Duration,
}

/// The work memory of one argon2 hash (allocated at a permit's first hash).
type Memory = Vec<Block>;

/// Leave to run one argon2 hash or verification, with its memory; given back when dropped.
pub struct HashPermit {
    _permit: OwnedSemaphorePermit,
    memory: Mutex<Memory>,
    pool: Arc<Mutex<Vec<Memory>>>,
}

impl std::fmt::Debug for PasswordHashes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHashes").field("available", &self.available()).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for HashPermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HashPermit")
    }
}

impl Drop for HashPermit {
    fn drop(&mut self) {
        let memory = std::mem::take(self.memory.get_mut().unwrap_or_else(|e| e.into_inner()));
        self.pool.lock().unwrap_or_else(|e| e.into_inner()).push(memory);
    }
}

/// No permit came within the wait: the server is busy hashing (answer 503 with `Retry-After`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("every password hash permit is taken")]
pub struct HashesBusy {
    /// How long to wait before trying again.
    pub retry_after: Duration,
}

impl PasswordHashes {
    /// Longest a request waits for a permit before it is answered busy (the default of
    /// `limits.password_hash_wait_ms`; the import's own permits).
    pub const WAIT: Duration = Duration::from_secs(2);

    /// `at_once` hashes at a time (at least one); a request waits at most `wait` for one.
    pub fn new(at_once: usize, wait: Duration) -> PasswordHashes {
        PasswordHashes { permits: Arc::new(Semaphore::new(at_once.max(1))), memory: Arc::default(), wait }
    }

    /// One at a time, for work outside the server's requests (the region import of the command
    /// line and of the demo at start-up, before the server answers; tests).
    pub fn one_at_a_time() -> PasswordHashes {
        PasswordHashes::new(1, Self::WAIT)
    }

    fn permit_of(&self, permit: OwnedSemaphorePermit) -> HashPermit {
        let memory = self.memory.lock().unwrap_or_else(|e| e.into_inner()).pop().unwrap_or_default();
        HashPermit { _permit: permit, memory: Mutex::new(memory), pool: self.memory.clone() }
    }

    /// A permit, waiting at most the configured wait.
    pub async fn permit(&self) -> Result<HashPermit, HashesBusy> {
        let busy = HashesBusy { retry_after: self.wait.max(Duration::from_secs(1)) };
        match tokio::time::timeout(self.wait, self.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(self.permit_of(permit)),
            // Closed (never done) or timed out.
            Ok(Err(_)) | Err(_) => Err(busy),
        }
    }

    /// A permit if one is free now.
    pub fn try_permit(&self) -> Option<HashPermit> {
        self.permits.clone().try_acquire_owned().ok().map(|permit| self.permit_of(permit))
    }

    /// Permits free now.
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }
}

fn argon2() -> Argon2<'static> {
    // argon2id v19, default cost (19 MiB, t=2, p=1): the OWASP baseline.
    Argon2::default()
}

/// Runs `argon` in the permit's memory (a stored hash of a higher cost than the default, from a
/// region file, gets memory of its own for the one hash).
fn argon2_into(
    permit: &HashPermit,
    argon: &Argon2<'_>,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    let need = argon.params().block_count();
    if need > Params::DEFAULT_M_COST as usize {
        return argon.hash_password_into(password, salt, out);
    }
    let mut memory = permit.memory.lock().unwrap_or_else(|e| e.into_inner());
    if memory.len() < need {
        memory.resize(need, Block::default());
    }
    argon.hash_password_into_with_memory(password, salt, out, &mut memory[..need])
}

/// The argon2 output of `password` with `argon` and the PHC `salt`, `len` bytes long.
fn output_of(
    permit: &HashPermit,
    argon: &Argon2<'_>,
    password: &[u8],
    salt: Salt<'_>,
    len: usize,
) -> Result<Output, password_hash::Error> {
    let mut buf = [0u8; Salt::MAX_LENGTH];
    let salt = salt.decode_b64(&mut buf)?;
    Output::init_with(len, |out| Ok(argon2_into(permit, argon, password, salt, out)?))
}

/// argon2id PHC string of `password` (the standard encoding, as `argon2`'s `PasswordHasher`
/// writes it).
pub fn hash_password(permit: &HashPermit, password: &str) -> Result<String, DataError> {
    if password.len() > MAX_SECRET_LEN {
        return Err(DataError::Invalid(format!("password longer than {MAX_SECRET_LEN} bytes")));
    }
    let salt = SaltString::generate(&mut OsRng);
    let argon = argon2();
    let phc = || -> Result<String, password_hash::Error> {
        let output = output_of(permit, &argon, password.as_bytes(), salt.as_salt(), Params::DEFAULT_OUTPUT_LEN)?;
        let hash = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(argon.params())?,
            salt: Some(salt.as_salt()),
            hash: Some(output),
        };
        Ok(hash.to_string())
    };
    phc().map_err(|e| DataError::Hash(e.to_string()))
}

/// Is `hash` a PHC string that `verify_password` can check?
pub fn is_valid_password_hash(hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| h.algorithm.as_str().starts_with("argon2"))
}

/// Does `password` match the PHC string `hash`? A malformed hash never matches. (What
/// `argon2`'s `PasswordVerifier` does, in the permit's memory; outputs compared in constant
/// time.)
pub fn verify_password(permit: &HashPermit, hash: &str, password: &str) -> bool {
    if password.len() > MAX_SECRET_LEN {
        return false;
    }
    let matches = || -> Result<bool, password_hash::Error> {
        let parsed = PasswordHash::new(hash)?;
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash.as_ref()) else { return Ok(false) };
        let algorithm = Algorithm::try_from(parsed.algorithm)?;
        let version = parsed.version.map(Version::try_from).transpose()?.unwrap_or_default();
        let argon = Argon2::new(algorithm, version, Params::try_from(&parsed)?);
        Ok(output_of(permit, &argon, password.as_bytes(), salt, expected.len())? == *expected)
    };
    matches().unwrap_or(false)
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

/// Verified against for unknown usernames so that they cost as much as wrong passwords (and
/// hold a permit as long).
static DUMMY_HASH: OnceLock<String> = OnceLock::new();

fn dummy_hash(permit: &HashPermit) -> &'static str {
    DUMMY_HASH.get_or_init(|| hash_password(permit, &new_token()).unwrap_or_else(|_| String::from("$argon2id$invalid")))
}

/// Checks username and password; on success stores a session valid for `ttl_hours` from
/// `now_ms` (config `auth.session_ttl_hours`). Unknown user and wrong password both give
/// [`DataError::Unauthorized`]. The password is checked under `permit` (also for an unknown
/// user, against a dummy hash: the same time and memory).
pub fn login(
    db: &Db,
    permit: &HashPermit,
    username: &str,
    password: &str,
    now_ms: u64,
    ttl_hours: u64,
) -> Result<LoginOk, DataError> {
    if username.is_empty() || username.len() > 256 || password.len() > MAX_SECRET_LEN {
        return Err(DataError::Unauthorized);
    }
    let found = db.password_hash_of(username)?;
    let (user_id, ok) = match &found {
        Some((id, hash)) => (*id, verify_password(permit, hash, password)),
        None => {
            let _ = verify_password(permit, dummy_hash(permit), password);
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

    fn permit() -> HashPermit {
        test_permit()
    }

    fn setup() -> (Db, String) {
        let db = Db::open_in_memory().unwrap();
        let kiosk_token = new_token();
        let pw = hash_password(&permit(), "correct horse").unwrap();
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
        let p = permit();
        let h = hash_password(&p, "s3cret").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(is_valid_password_hash(&h));
        assert!(verify_password(&p, &h, "s3cret"));
        assert!(!verify_password(&p, &h, "s3cret "));
        assert!(!verify_password(&p, "not a hash", "s3cret"));
        assert!(!is_valid_password_hash("not a hash"));
        assert_ne!(hash_password(&p, "s3cret").unwrap(), h); // salted
    }

    #[test]
    fn hashes_are_those_of_the_argon2_crate() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let p = permit();
        // Ours verify with the crate's verifier, and the crate's (of any cost) with ours.
        let ours = hash_password(&p, "s3cret").unwrap();
        assert!(Argon2::default().verify_password(b"s3cret", &PasswordHash::new(&ours).unwrap()).is_ok());
        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::default().hash_password(b"s3cret", &salt).unwrap().to_string();
        assert!(verify_password(&p, &theirs, "s3cret") && !verify_password(&p, &theirs, "s3cret!"));
        let cheap = Params::new(1024, 1, 1, None).unwrap();
        let costly = Params::new(2 * Params::DEFAULT_M_COST, 1, 1, None).unwrap();
        for params in [cheap, costly] {
            let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
            let h = argon.hash_password(b"s3cret", &salt).unwrap().to_string();
            assert!(verify_password(&p, &h, "s3cret") && !verify_password(&p, &h, "s3cre"), "{h}");
        }
        // The memory reused after the cheap one still gives the default's answer.
        assert!(verify_password(&p, &ours, "s3cret"));
        assert!(!verify_password(&p, "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ", "s3cret"), "no output");
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
        let ok = login(&db, &permit(), "alice", "correct horse", now, 12).unwrap();
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

        let ok2 = login(&db, &permit(), "alice", "correct horse", now, 12).unwrap();
        assert_ne!(ok2.token, ok.token);
        resolve_token(&db, &ok2.token, now).unwrap();
        logout(&db, &ok2.token).unwrap();
        assert!(resolve_token(&db, &ok2.token, now).unwrap_err().is_unauthorized());
        logout(&db, "unknown").unwrap();
    }

    #[test]
    fn bad_credentials_are_unauthorized() {
        let (db, _) = setup();
        assert!(login(&db, &permit(), "alice", "wrong", 0, 1).unwrap_err().is_unauthorized());
        assert!(login(&db, &permit(), "bob", "correct horse", 0, 1).unwrap_err().is_unauthorized());
        assert!(login(&db, &permit(), "", "", 0, 1).unwrap_err().is_unauthorized());
        let long = "x".repeat(MAX_SECRET_LEN + 1);
        assert!(login(&db, &permit(), "alice", &long, 0, 1).unwrap_err().is_unauthorized());
        // Errors say nothing about which part was wrong.
        assert_eq!(login(&db, &permit(), "bob", "x", 0, 1).unwrap_err().to_string(), "unauthorized");
    }
}

/// A permit of its own, for unit tests of code that hashes.
#[cfg(test)]
pub(crate) fn test_permit() -> HashPermit {
    PasswordHashes::one_at_a_time().try_permit().expect("a fresh bound has a permit")
}

#[cfg(test)]
mod bound_tests {
    use super::*;

    #[tokio::test]
    async fn hashes_past_the_bound_wait_then_are_busy() {
        let hashes = PasswordHashes::new(2, Duration::from_millis(50));
        let a = hashes.permit().await.unwrap();
        let _b = hashes.permit().await.unwrap();
        assert_eq!(hashes.available(), 0);
        let busy = hashes.permit().await.unwrap_err();
        assert!(busy.retry_after >= Duration::from_secs(1), "Retry-After is at least a second");
        assert!(hashes.try_permit().is_none());
        // A permit given back is taken by the one waiting.
        let waiting = tokio::spawn({
            let hashes = hashes.clone();
            async move { hashes.permit().await.is_ok() }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(a);
        assert!(waiting.await.unwrap());
    }
}
