-- Recordings of calls: one row per participant per opening of a call room ("take"), its
-- segments, and a catalog of every stored object (for retention and legal hold).

CREATE TABLE recordings (
    id              INTEGER PRIMARY KEY,
    room            TEXT    NOT NULL,
    take            INTEGER NOT NULL,          -- Unix ms the room was opened
    participant     TEXT    NOT NULL,          -- media label, e.g. kiosk:3
    case_id         INTEGER REFERENCES cases(id),
    status          TEXT    NOT NULL CHECK (status IN ('recording', 'complete', 'incomplete')),
    started_at_ms   INTEGER NOT NULL,
    ended_at_ms     INTEGER,
    archive_key     TEXT,
    manifest_key    TEXT,
    note            TEXT,
    UNIQUE (room, take, participant)
);
CREATE INDEX recordings_case ON recordings(case_id);

CREATE TABLE recording_segments (
    recording_id    INTEGER NOT NULL REFERENCES recordings(id),
    idx             INTEGER NOT NULL,
    object_key      TEXT    NOT NULL,
    sha256          TEXT    NOT NULL,           -- of the plaintext segment
    bytes           INTEGER NOT NULL,
    start_ms        INTEGER NOT NULL,
    duration_ms     INTEGER NOT NULL,
    PRIMARY KEY (recording_id, idx)
);

CREATE TABLE stored_objects (
    object_key      TEXT    PRIMARY KEY,
    class           TEXT    NOT NULL,
    case_id         INTEGER REFERENCES cases(id),
    created_at_ms   INTEGER NOT NULL,
    bytes           INTEGER NOT NULL
);
CREATE INDEX stored_objects_case ON stored_objects(case_id);

-- Retention: objects moved to the legal-hold area, holds per case, and what was destroyed.
ALTER TABLE stored_objects ADD COLUMN in_hold_area INTEGER NOT NULL DEFAULT 0;

CREATE TABLE legal_holds (
    case_id         INTEGER PRIMARY KEY REFERENCES cases(id),
    placed_by       INTEGER NOT NULL REFERENCES users(id),
    placed_at_ms    INTEGER NOT NULL,
    reason          TEXT    NOT NULL
);

CREATE TABLE destructions (
    id              INTEGER PRIMARY KEY,
    object_key      TEXT    NOT NULL,
    class           TEXT    NOT NULL,
    case_id         INTEGER,
    created_at_ms   INTEGER NOT NULL,
    destroyed_at_ms INTEGER NOT NULL,
    reason          TEXT    NOT NULL
);
