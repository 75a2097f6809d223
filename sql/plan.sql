-- plan: the action for every finding row, decided per file. A file is acted on (with $action:
-- quarantine, trash or delete) when one of its finding kinds is in $act_on and it is not the
-- keeper of a group; keepers and files under a protected folder are kept; every other flagged
-- file is left for review. A file in a format no decoder here reads (`unsupported`, e.g. a
-- camera RAW) is never acted on, whatever else it is flagged as. Nothing here touches the
-- disk: `curate apply` does, later.
WITH per_path AS (
    SELECT
        path,
        bool_or(coalesce(is_keeper, false)) AS is_keeper,
        bool_or(list_contains($act_on, kind) AND NOT coalesce(is_keeper, false))
            AND NOT bool_or(kind = 'unsupported') AS acted
    FROM raw_findings
    GROUP BY path
)
SELECT
    $run_id AS run_id,
    f.path,
    f.kind,
    f.score,
    f.group_id,
    f.is_keeper,
    CASE
        WHEN p.is_keeper THEN 'keep'
        WHEN pr.path IS NOT NULL THEN 'keep'
        WHEN p.acted THEN $action
        ELSE 'review'
    END AS action,
    CASE WHEN pr.path IS NOT NULL AND NOT p.is_keeper AND p.acted
        THEN f.reason || ' [protected folder: never touched]'
        ELSE f.reason
    END AS reason,
    -- stable across runs: the same kind of finding on the same file has the same id
    left(sha256(f.kind || ':' || f.path), 16) AS finding_id
FROM raw_findings f
JOIN per_path p USING (path)
LEFT JOIN protected pr USING (path)
