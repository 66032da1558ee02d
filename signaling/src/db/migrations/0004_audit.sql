-- 0004: 可查可追溯. The tamper-evident audit record (every case event and every access, in one
-- append-only hash chain with signed checkpoints), signed case manifests, the history of legal
-- holds, what the review search needs, and what the player needs of a recording.

-- The chain. `hash` = SHA-256("cunneng-audit-v1\n" || prev_hash || canonical entry), hex; the
-- first entry's prev_hash is 64 zeros. `detail` is JSON without personal data.
CREATE TABLE audit_log (
    seq         INTEGER PRIMARY KEY,
    at_ms       INTEGER NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('case_event', 'access')),
    case_id     INTEGER,
    actor_kind  TEXT    NOT NULL,
    actor_id    INTEGER,
    actor_name  TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    detail      TEXT    NOT NULL,
    address     TEXT,
    prev_hash   TEXT    NOT NULL,
    hash        TEXT    NOT NULL
);
CREATE INDEX audit_log_case ON audit_log(case_id, seq);
CREATE INDEX audit_log_actor ON audit_log(actor_kind, actor_id, at_ms);
CREATE INDEX audit_log_at ON audit_log(at_ms);

-- Signed heads of the chain (also appended to DATA_DIR/audit/checkpoints.log).
CREATE TABLE audit_checkpoints (
    seq         INTEGER PRIMARY KEY,
    hash        TEXT    NOT NULL,
    at_ms       INTEGER NOT NULL,
    key_id      TEXT    NOT NULL,
    signature   TEXT    NOT NULL
);

-- A case's signed manifest, sealed once it is final and its recordings are finished.
CREATE TABLE case_manifests (
    case_id       INTEGER PRIMARY KEY REFERENCES cases(id),
    sealed_at_ms  INTEGER NOT NULL,
    manifest      TEXT    NOT NULL,
    key_id        TEXT    NOT NULL,
    signature     TEXT    NOT NULL
);

-- Legal holds: the current one stays in legal_holds; every placing and lifting is kept here.
CREATE TABLE legal_hold_history (
    id          INTEGER PRIMARY KEY,
    case_id     INTEGER NOT NULL REFERENCES cases(id),
    action      TEXT    NOT NULL CHECK (action IN ('placed', 'lifted')),
    by_user     INTEGER NOT NULL REFERENCES users(id),
    at_ms       INTEGER NOT NULL,
    reason      TEXT    NOT NULL
);
CREATE INDEX legal_hold_history_case ON legal_hold_history(case_id, id);
INSERT INTO legal_hold_history (case_id, action, by_user, at_ms, reason)
    SELECT case_id, 'placed', placed_by, placed_at_ms, reason FROM legal_holds;

-- A supervisor may be limited to one town (docs/import-format.md): the users table is rebuilt
-- with that check (SQLite cannot change a CHECK in place; the migration runs with foreign keys
-- off and checks them before it commits).
CREATE TABLE users_new (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE CHECK (username <> ''),
    display_name  TEXT NOT NULL CHECK (display_name <> ''),
    role          TEXT NOT NULL CHECK (role IN ('approver', 'chief', 'dispatcher', 'supervisor', 'admin')),
    town_id       INTEGER REFERENCES towns(id),
    window_id     INTEGER REFERENCES windows(id),
    password_hash TEXT NOT NULL, -- argon2id PHC string
    CHECK (role <> 'approver' OR (town_id IS NOT NULL AND window_id IS NOT NULL)),
    CHECK (role NOT IN ('chief', 'dispatcher') OR town_id IS NOT NULL),
    CHECK (role <> 'supervisor' OR window_id IS NULL),
    CHECK (role <> 'admin' OR (town_id IS NULL AND window_id IS NULL))
);
INSERT INTO users_new (id, username, display_name, role, town_id, window_id, password_hash)
    SELECT id, username, display_name, role, town_id, window_id, password_hash FROM users;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;

-- The review search: the villager by the last four digits of phone or ID number (never a
-- substring search over sealed values), and the usual filters.
ALTER TABLE cases ADD COLUMN phone_last4 TEXT;
ALTER TABLE cases ADD COLUMN id_last4 TEXT;
UPDATE cases SET phone_last4 = substr(villager_phone, -4) WHERE villager_phone IS NOT NULL;
UPDATE cases SET id_last4 = substr(id_number_masked, -4) WHERE id_number_masked IS NOT NULL;
CREATE INDEX cases_phone_last4 ON cases(phone_last4);
CREATE INDEX cases_id_last4 ON cases(id_last4);
CREATE INDEX cases_villager_name ON cases(villager_name);
CREATE INDEX cases_matter ON cases(matter_id, id);
CREATE INDEX cases_created_id ON cases(created_at_ms, id);
CREATE INDEX cases_status_id ON cases(status, id);
CREATE INDEX cases_decided_by ON cases(decided_by, id);
CREATE INDEX calls_window ON calls(window_id, case_id);
CREATE INDEX calls_staff ON calls(staff_id, case_id);

-- What the player and the case manifest need of a finished recording: the archive's plaintext
-- hash and size, the wall clock of the timeline's 0, the gaps (JSON).
ALTER TABLE recordings ADD COLUMN archive_sha256 TEXT;
ALTER TABLE recordings ADD COLUMN archive_bytes INTEGER;
ALTER TABLE recordings ADD COLUMN timeline_start_ms INTEGER;
ALTER TABLE recordings ADD COLUMN gaps TEXT NOT NULL DEFAULT '[]';
