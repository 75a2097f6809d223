-- file_changes: files 'added', 'removed' (disappeared) or 'changed' (new content, by size,
-- mtime or hash) between a run and the previous completed run of the same SOURCE.
WITH pairs AS (
    SELECT run_id, previous_run_id FROM run_sequence WHERE previous_run_id IS NOT NULL
),
cur AS (
    SELECT p.run_id, p.previous_run_id, f.path, f.size_bytes, f.mtime_ns, i.sha256
    FROM pairs p
    JOIN files f ON f.run_id = p.run_id AND f.entry_type = 'file'
    LEFT JOIN images i ON i.run_id = f.run_id AND i.path = f.path
),
prev AS (
    SELECT p.run_id, p.previous_run_id, f.path, f.size_bytes, f.mtime_ns, i.sha256
    FROM pairs p
    JOIN files f ON f.run_id = p.previous_run_id AND f.entry_type = 'file'
    LEFT JOIN images i ON i.run_id = f.run_id AND i.path = f.path
)
SELECT
    coalesce(c.run_id, b.run_id) AS run_id,
    coalesce(c.previous_run_id, b.previous_run_id) AS previous_run_id,
    CASE
        WHEN b.path IS NULL THEN 'added'
        WHEN c.path IS NULL THEN 'removed'
        ELSE 'changed'
    END AS change,
    coalesce(c.path, b.path) AS path,
    c.size_bytes,
    b.size_bytes AS previous_size_bytes,
    c.sha256,
    b.sha256 AS previous_sha256
FROM cur c
FULL JOIN prev b ON b.run_id = c.run_id AND b.path = c.path
WHERE c.path IS NULL
   OR b.path IS NULL
   OR c.size_bytes IS DISTINCT FROM b.size_bytes
   OR c.mtime_ns IS DISTINCT FROM b.mtime_ns
   OR c.sha256 IS DISTINCT FROM b.sha256
