-- run_sequence: each completed run with the completed run of the same SOURCE before it, the
-- baseline of "what changed since the last run".
SELECT
    run_id,
    source,
    started_at,
    lag(run_id) OVER (PARTITION BY source ORDER BY started_at, run_id) AS previous_run_id
FROM runs
WHERE status = 'completed'
