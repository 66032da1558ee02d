-- 0007: administration without restarts (issue 9). Region and catalog items can be disabled
-- (kept for the history that refers to them, out of the running queue and of every new
-- choice); administrative changes join the audit record as entries of kind 'admin'.
ALTER TABLE towns ADD COLUMN disabled_at_ms INTEGER;
ALTER TABLE villages ADD COLUMN disabled_at_ms INTEGER;
ALTER TABLE windows ADD COLUMN disabled_at_ms INTEGER;
ALTER TABLE matters ADD COLUMN disabled_at_ms INTEGER;

-- The audit chain gains a kind: rebuilt with the wider CHECK (rows, hashes and order kept;
-- an entry's hash covers its kind's text, which does not change).
CREATE TABLE audit_log_new (
    seq         INTEGER PRIMARY KEY,
    at_ms       INTEGER NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('case_event', 'access', 'admin')),
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
INSERT INTO audit_log_new SELECT seq, at_ms, kind, case_id, actor_kind, actor_id, actor_name, action, detail,
    address, prev_hash, hash FROM audit_log ORDER BY seq;
DROP TABLE audit_log;
ALTER TABLE audit_log_new RENAME TO audit_log;
CREATE INDEX audit_log_case ON audit_log(case_id, seq);
CREATE INDEX audit_log_actor ON audit_log(actor_kind, actor_id, at_ms);
CREATE INDEX audit_log_at ON audit_log(at_ms);
CREATE INDEX audit_log_kind ON audit_log(kind, seq);
