-- new_findings: what is new since the last run, for the latest completed run of each SOURCE.
SELECT c.*
FROM finding_changes c
JOIN (
    SELECT source, arg_max(run_id, started_at) AS run_id FROM run_sequence GROUP BY source
) latest USING (run_id)
WHERE c.change = 'new'
