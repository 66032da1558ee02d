-- 0009: statistics (issue 9).
-- When the leg last rang an approver before it was answered (set on every ring while the leg
-- waits; an answer or an end freezes it): ring-to-answer is answered_at_ms - rang_at_ms. NULL
-- for legs recorded before this migration and for legs answered without a ring (taken from
-- the queue list).
ALTER TABLE calls ADD COLUMN rang_at_ms INTEGER;
-- The statistics read every case opened in a range: this index covers that scan, so it never
-- visits the wide case rows (villager data, notes).
CREATE INDEX cases_stats ON cases(created_at_ms, village_id, matter_id, outcome, decided_at_ms, decided_by,
    signoff_at_ms);
-- And the calls of those cases (by the range of their ids), also from an index alone; it
-- replaces calls_case, its prefix.
CREATE INDEX calls_stats ON calls(case_id, window_id, requested_at_ms, rang_at_ms, answered_at_ms, ended_at_ms,
    end_reason, transferred_from_id);
DROP INDEX calls_case;
