-- finding_changes: findings that appeared ('new') or went away ('gone') between a run and the
-- previous completed run of the same SOURCE, matched by their stable finding_id (kind + path).
-- A duplicate whose group changed keeps its id: group membership is in `findings`.
WITH pairs AS (
    SELECT run_id, previous_run_id FROM run_sequence WHERE previous_run_id IS NOT NULL
),
cur AS (
    SELECT p.run_id, p.previous_run_id, f.*  EXCLUDE (run_id)
    FROM pairs p JOIN findings f ON f.run_id = p.run_id
),
prev AS (
    SELECT p.run_id, p.previous_run_id, f.* EXCLUDE (run_id)
    FROM pairs p JOIN findings f ON f.run_id = p.previous_run_id
)
SELECT
    coalesce(c.run_id, b.run_id) AS run_id,
    coalesce(c.previous_run_id, b.previous_run_id) AS previous_run_id,
    CASE WHEN b.finding_id IS NULL THEN 'new' ELSE 'gone' END AS change,
    coalesce(c.finding_id, b.finding_id) AS finding_id,
    coalesce(c.kind, b.kind) AS kind,
    coalesce(c.path, b.path) AS path,
    coalesce(c.group_id, b.group_id) AS group_id,
    coalesce(c.score, b.score) AS score,
    coalesce(c.action, b.action) AS action,
    coalesce(c.reason, b.reason) AS reason
FROM cur c
FULL JOIN prev b ON b.run_id = c.run_id AND b.finding_id = c.finding_id
WHERE c.finding_id IS NULL OR b.finding_id IS NULL
