-- hookflow schema 0005: a manual retry continues the attempt numbering.

-- Attempts made at `next_step` before the last manual retry: the attempt
-- numbers go on (attempt 4, not 1 again), while the step's retry policy
-- counts only the attempts after the base (a fresh retry budget). Reset to
-- 0 when the run moves to another step.
ALTER TABLE runs ADD COLUMN attempt_base INTEGER NOT NULL DEFAULT 0;
