-- planned files: one row per file the plan acts on, with what the apply step re-checks
-- before touching it (sha256, size and mtime as analysed). A photo's files are all planned
-- with its primary file's action (`photo_id` ties them together for the apply step).
WITH acted AS (
    SELECT
        f.run_id,
        f.path,
        any_value(f.action) AS action,
        string_agg(DISTINCT f.kind, ',' ORDER BY f.kind) AS kinds,
        string_agg(f.reason, '; ' ORDER BY f.kind) AS reason
    FROM findings f
    WHERE f.action IN ('quarantine', 'trash', 'delete')
    GROUP BY f.run_id, f.path
)
SELECT
    a.run_id,
    pf.path,
    a.action,
    coalesce(own.kinds, 'photo') AS kinds,
    coalesce(own.reason, 'one photo with ' || a.path || ' (' || pf.role || ')') AS reason,
    i.sha256,
    coalesce(i.size_bytes, pf.size_bytes) AS size_bytes,
    coalesce(i.mtime_ns, pf.mtime_ns) AS mtime_ns,
    pf.photo_id,
    pf.role
FROM acted a
JOIN photo_files p0 ON p0.path = a.path AND p0.role = 'primary'
JOIN photo_files pf ON pf.photo_id = p0.photo_id
LEFT JOIN acted own ON own.path = pf.path
LEFT JOIN images i ON i.path = pf.path
