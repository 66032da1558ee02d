-- 0001: region (county, towns, villages, windows), matter catalog, devices and accounts,
-- sessions, minimal cases and calls, queue snapshot.
-- Booleans are INTEGER 0/1; times are Unix milliseconds (INTEGER).

CREATE TABLE county (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    name TEXT NOT NULL CHECK (name <> ''),
    -- prefix of human-readable case numbers, e.g. 'ZH' in ZH-20261122-0007
    code TEXT NOT NULL CHECK (code <> '')
);

CREATE TABLE towns (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE CHECK (name <> ''),
    -- 无差别综合受理: any window of the town may take any matter
    any_window INTEGER NOT NULL DEFAULT 0 CHECK (any_window IN (0, 1))
);

CREATE TABLE villages (
    id      INTEGER PRIMARY KEY,
    town_id INTEGER NOT NULL REFERENCES towns(id),
    name    TEXT NOT NULL CHECK (name <> ''),
    kind    TEXT NOT NULL DEFAULT 'village' CHECK (kind IN ('village', 'community')),
    UNIQUE (town_id, name)
);

CREATE TABLE windows (
    id      INTEGER PRIMARY KEY,
    town_id INTEGER NOT NULL REFERENCES towns(id),
    name    TEXT NOT NULL CHECK (name <> ''),
    kind    TEXT NOT NULL CHECK (kind IN ('comprehensive', 'civil_affairs', 'social_security', 'custom')),
    -- 1: window_matters is derived from kind (re-derived on every import); 0: listed explicitly
    derive_matters INTEGER NOT NULL DEFAULT 1 CHECK (derive_matters IN (0, 1)),
    UNIQUE (town_id, name)
);

CREATE TABLE matters (
    id                 INTEGER PRIMARY KEY,
    code               TEXT NOT NULL UNIQUE CHECK (code <> ''),
    name               TEXT NOT NULL CHECK (name <> ''),
    plain_name         TEXT NOT NULL CHECK (plain_name <> ''),
    department         TEXT NOT NULL DEFAULT '',
    window_kind        TEXT NOT NULL CHECK (window_kind IN ('comprehensive', 'civil_affairs', 'social_security', 'custom')),
    required_papers    TEXT NOT NULL DEFAULT '[]', -- JSON array of strings
    needs_signoff      INTEGER NOT NULL DEFAULT 0 CHECK (needs_signoff IN (0, 1)),
    village_can_finish INTEGER NOT NULL DEFAULT 0 CHECK (village_can_finish IN (0, 1)),
    keywords           TEXT NOT NULL DEFAULT ''    -- space-separated words for search
);

CREATE TABLE window_matters (
    window_id INTEGER NOT NULL REFERENCES windows(id) ON DELETE CASCADE,
    matter_id INTEGER NOT NULL REFERENCES matters(id) ON DELETE CASCADE,
    PRIMARY KEY (window_id, matter_id)
);
CREATE INDEX window_matters_matter ON window_matters(matter_id);

CREATE TABLE kiosks (
    id         INTEGER PRIMARY KEY,
    village_id INTEGER NOT NULL REFERENCES villages(id),
    name       TEXT NOT NULL CHECK (name <> ''),
    token_hash TEXT NOT NULL UNIQUE, -- hex SHA-256 of the device token
    UNIQUE (village_id, name)
);

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE CHECK (username <> ''),
    display_name  TEXT NOT NULL CHECK (display_name <> ''),
    role          TEXT NOT NULL CHECK (role IN ('approver', 'chief', 'dispatcher', 'supervisor', 'admin')),
    town_id       INTEGER REFERENCES towns(id),
    window_id     INTEGER REFERENCES windows(id),
    password_hash TEXT NOT NULL, -- argon2id PHC string
    CHECK (role <> 'approver' OR (town_id IS NOT NULL AND window_id IS NOT NULL)),
    CHECK (role NOT IN ('chief', 'dispatcher') OR town_id IS NOT NULL),
    CHECK (role NOT IN ('supervisor', 'admin') OR (town_id IS NULL AND window_id IS NULL))
);

CREATE TABLE sessions (
    token_hash    TEXT PRIMARY KEY, -- hex SHA-256 of the session token
    user_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL
);
CREATE INDEX sessions_expires ON sessions(expires_at_ms);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE cases (
    id            INTEGER PRIMARY KEY,
    case_no       TEXT NOT NULL UNIQUE, -- e.g. ZH-20261122-0007 (date in China time)
    matter_id     INTEGER NOT NULL REFERENCES matters(id),
    village_id    INTEGER NOT NULL REFERENCES villages(id),
    kiosk_id      INTEGER REFERENCES kiosks(id),
    status        TEXT NOT NULL DEFAULT 'open',
    created_at_ms INTEGER NOT NULL
);
CREATE INDEX cases_created ON cases(created_at_ms);

-- One row per leg: a transfer ends a leg (end_reason 'transferred') and opens a new one.
CREATE TABLE calls (
    id                  INTEGER PRIMARY KEY,
    case_id             INTEGER NOT NULL REFERENCES cases(id),
    window_id           INTEGER NOT NULL REFERENCES windows(id),
    kiosk_id            INTEGER NOT NULL REFERENCES kiosks(id),
    staff_id            INTEGER REFERENCES users(id),
    transferred_from_id INTEGER REFERENCES calls(id),
    requested_at_ms     INTEGER NOT NULL,
    answered_at_ms      INTEGER,
    ended_at_ms         INTEGER,
    end_reason          TEXT
);
CREATE INDEX calls_case ON calls(case_id);

CREATE TABLE queue_state (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    json          TEXT NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
