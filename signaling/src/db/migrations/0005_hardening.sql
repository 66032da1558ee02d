-- 0005: hardening (issue 12). Intents: an object is named here before it is written to the
-- store, and the name leaves once the object's row (a paper, a catalogued segment) is
-- committed; the reconcile sweep settles what a crash left in between.
CREATE TABLE object_intents (
    object_key    TEXT PRIMARY KEY,
    class         TEXT NOT NULL,
    case_id       INTEGER,
    created_at_ms INTEGER NOT NULL
);

-- The progress lookup code printed on receipts (8 random digits): the public lookup needs it
-- with the case number and the phone's last four digits, so that guessing sequential case
-- numbers leads nowhere.
ALTER TABLE cases ADD COLUMN lookup_code TEXT;
UPDATE cases SET lookup_code = printf('%08d', abs(random()) % 100000000) WHERE lookup_code IS NULL;
