-- planned files: one row per file the plan acts on, with what the apply step re-checks
-- before touching it (sha256, size and mtime as analysed).
SELECT
    f.run_id,
    f.path,
    any_value(f.action) AS action,
    string_agg(DISTINCT f.kind, ',' ORDER BY f.kind) AS kinds,
    string_agg(f.reason, '; ' ORDER BY f.kind) AS reason,
    any_value(i.sha256) AS sha256,
    any_value(i.size_bytes) AS size_bytes,
    any_value(i.mtime_ns) AS mtime_ns
FROM findings f
JOIN images i USING (path)
WHERE f.action IN ('quarantine', 'trash', 'delete')
GROUP BY f.run_id, f.path
