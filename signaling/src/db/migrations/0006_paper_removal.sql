-- 0006: a scan the village room took back (tagged or scanned by mistake) stays stored, for the
-- record and its retention, but is no longer a paper of the case: when it was taken back (who
-- did it is on the timeline, `paper.removed`).
ALTER TABLE papers ADD COLUMN removed_at_ms INTEGER;
