-- 0008: accounts and kiosk devices managed by the county administrator (issue 9).
-- Disabled rows stay (cases, calls and the audit record refer to them); a disabled account
-- cannot log in and has no sessions, a disabled kiosk's token is refused.
ALTER TABLE users ADD COLUMN disabled_at_ms INTEGER;
-- Set by an administrator's password reset (and for new accounts): every staff route but
-- /api/me, /api/logout and /api/password is refused until the user chose a new password.
ALTER TABLE users ADD COLUMN must_change_password INTEGER NOT NULL DEFAULT 0
    CHECK (must_change_password IN (0, 1));
ALTER TABLE users ADD COLUMN last_login_ms INTEGER;

ALTER TABLE kiosks ADD COLUMN disabled_at_ms INTEGER;
-- When the kiosk's socket last said hello or passed its periodic check.
ALTER TABLE kiosks ADD COLUMN last_seen_ms INTEGER;
-- NULL: no expiry (tokens from the region import file); enrolment and rotation set it.
ALTER TABLE kiosks ADD COLUMN token_expires_at_ms INTEGER;
-- 0: created by the administrator (or revoked) and not enrolled since: its token_hash is the
-- hash of a secret nobody was given.
ALTER TABLE kiosks ADD COLUMN enrolled INTEGER NOT NULL DEFAULT 1 CHECK (enrolled IN (0, 1));

-- At most one open enrolment code per kiosk (a new one replaces it); used once.
CREATE TABLE kiosk_enrolments (
    kiosk_id      INTEGER PRIMARY KEY REFERENCES kiosks(id) ON DELETE CASCADE,
    code_hash     TEXT    NOT NULL UNIQUE, -- hex SHA-256 of the 8-digit code
    expires_at_ms INTEGER NOT NULL,
    created_by    INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at_ms INTEGER NOT NULL
);
