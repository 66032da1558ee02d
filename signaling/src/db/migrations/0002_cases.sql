-- 0002: cases in full (docs/cases-api.md): the villager, the decision and its sign-off, the
-- timeline, papers and resumable uploads, ratings, the village inbox, bookings.
-- Villager name and phone are personal data: never logged. The ID number is kept only sealed
-- (storage format, class 'pii') and as a masked display string.

ALTER TABLE cases ADD COLUMN villager_name TEXT;
ALTER TABLE cases ADD COLUMN villager_phone TEXT; -- digits only
ALTER TABLE cases ADD COLUMN id_number_masked TEXT;
ALTER TABLE cases ADD COLUMN id_number_sealed BLOB;
-- The latest decision (pending while status is 'signoff'/'returned', final otherwise).
ALTER TABLE cases ADD COLUMN outcome TEXT CHECK (outcome IS NULL OR outcome IN ('done', 'missing', 'refused', 'later'));
ALTER TABLE cases ADD COLUMN outcome_note TEXT;
ALTER TABLE cases ADD COLUMN missing_items TEXT NOT NULL DEFAULT '[]'; -- JSON array of strings
ALTER TABLE cases ADD COLUMN result_paper_id INTEGER;
ALTER TABLE cases ADD COLUMN decided_by INTEGER REFERENCES users(id);
ALTER TABLE cases ADD COLUMN decided_at_ms INTEGER;
ALTER TABLE cases ADD COLUMN signoff_by INTEGER REFERENCES users(id);
ALTER TABLE cases ADD COLUMN signoff_at_ms INTEGER;
ALTER TABLE cases ADD COLUMN signoff_decision TEXT CHECK (signoff_decision IS NULL OR signoff_decision IN ('approved', 'returned'));
ALTER TABLE cases ADD COLUMN signoff_reason TEXT;
ALTER TABLE cases ADD COLUMN updated_at_ms INTEGER;
CREATE INDEX cases_village ON cases(village_id, id);
CREATE INDEX cases_status ON cases(status);

-- The timeline: who, when, what. `detail` is JSON without personal data.
CREATE TABLE case_events (
    id              INTEGER PRIMARY KEY,
    case_id         INTEGER NOT NULL REFERENCES cases(id),
    at_ms           INTEGER NOT NULL,
    actor_kind      TEXT NOT NULL CHECK (actor_kind IN ('kiosk', 'staff', 'system')),
    actor_id        INTEGER,
    actor_name      TEXT NOT NULL DEFAULT '',
    kind            TEXT NOT NULL,
    detail          TEXT NOT NULL DEFAULT '{}',
    village_visible INTEGER NOT NULL DEFAULT 1 CHECK (village_visible IN (0, 1))
);
CREATE INDEX case_events_case ON case_events(case_id, id);

CREATE TABLE papers (
    id               INTEGER PRIMARY KEY,
    case_id          INTEGER NOT NULL REFERENCES cases(id),
    kind             TEXT NOT NULL CHECK (kind IN ('scan', 'result')),
    name             TEXT NOT NULL, -- a label only
    checklist_item   TEXT,
    content_type     TEXT NOT NULL CHECK (content_type IN ('application/pdf', 'image/jpeg', 'image/png')),
    size             INTEGER NOT NULL,
    sha256           TEXT NOT NULL, -- hex, of the plaintext
    object_key       TEXT NOT NULL UNIQUE, -- generated; the sealed object in the object store
    by_kind          TEXT NOT NULL CHECK (by_kind IN ('kiosk', 'staff')),
    by_id            INTEGER NOT NULL,
    by_name          TEXT NOT NULL,
    created_at_ms    INTEGER NOT NULL
);
CREATE INDEX papers_case ON papers(case_id, id);

-- Resumable uploads; their chunks are sealed objects under uploads/<id>/.
CREATE TABLE paper_uploads (
    id             TEXT PRIMARY KEY, -- random 128-bit hex
    case_id        INTEGER NOT NULL REFERENCES cases(id),
    kind           TEXT NOT NULL CHECK (kind IN ('scan', 'result')),
    name           TEXT NOT NULL,
    checklist_item TEXT,
    size           INTEGER NOT NULL CHECK (size > 0),
    received       INTEGER NOT NULL DEFAULT 0,
    chunks         INTEGER NOT NULL DEFAULT 0,
    content_type   TEXT,
    by_kind        TEXT NOT NULL CHECK (by_kind IN ('kiosk', 'staff')),
    by_id          INTEGER NOT NULL,
    by_name        TEXT NOT NULL,
    created_at_ms  INTEGER NOT NULL,
    updated_at_ms  INTEGER NOT NULL,
    paper_id       INTEGER REFERENCES papers(id) -- set when complete
);
CREATE INDEX paper_uploads_case ON paper_uploads(case_id);
CREATE INDEX paper_uploads_updated ON paper_uploads(updated_at_ms);

-- 好差评: one per call (leg).
CREATE TABLE ratings (
    call_id  INTEGER PRIMARY KEY REFERENCES calls(id),
    case_id  INTEGER NOT NULL REFERENCES cases(id),
    kiosk_id INTEGER REFERENCES kiosks(id),
    rating   TEXT NOT NULL CHECK (rating IN ('good', 'fair', 'bad')),
    comment  TEXT,
    at_ms    INTEGER NOT NULL
);
CREATE INDEX ratings_case ON ratings(case_id);

-- Results that come back to the village room after the call.
CREATE TABLE inbox (
    id            INTEGER PRIMARY KEY,
    village_id    INTEGER NOT NULL REFERENCES villages(id),
    case_id       INTEGER NOT NULL REFERENCES cases(id),
    created_at_ms INTEGER NOT NULL,
    read_at_ms    INTEGER
);
CREATE INDEX inbox_village ON inbox(village_id, id);

-- 预约: a 30-minute slot at a window, booked by a village room.
CREATE TABLE bookings (
    id            INTEGER PRIMARY KEY,
    village_id    INTEGER NOT NULL REFERENCES villages(id),
    kiosk_id      INTEGER REFERENCES kiosks(id),
    matter_id     INTEGER NOT NULL REFERENCES matters(id),
    window_id     INTEGER NOT NULL REFERENCES windows(id),
    start_ms      INTEGER NOT NULL,
    end_ms        INTEGER NOT NULL,
    note          TEXT,
    status        TEXT NOT NULL DEFAULT 'booked' CHECK (status IN ('booked', 'called', 'cancelled')),
    case_id       INTEGER REFERENCES cases(id),
    created_at_ms INTEGER NOT NULL
);
CREATE UNIQUE INDEX bookings_slot ON bookings(window_id, start_ms) WHERE status <> 'cancelled';
CREATE INDEX bookings_village ON bookings(village_id, start_ms);
CREATE INDEX bookings_window ON bookings(window_id, start_ms);
