-- plan: the action for every finding row. A photo (`photo_files`: a RAW + JPEG pair, a still
-- and its sidecars or Live Photo movie) is decided as a whole, by what its primary file shows:
-- it is acted on (with $action: quarantine, trash or delete) when one of its primary's finding
-- kinds is in $act_on and that file is not the keeper of a group; keepers, and photos with a
-- file under a protected folder, are kept; every other flagged file is left for review. A
-- photo with a file in a format no decoder here reads (`unsupported`) is never acted on,
-- whatever else it is flagged as, and the other files of a photo are never acted on alone.
-- A person's decision (`decided`) overrides the rules: `keep` keeps the photo, `remove` acts
-- on a flagged photo the rules left for review (never on a keeper or a protected photo).
-- Nothing here touches the disk: `curate apply` does, later.
WITH per_path AS (
    SELECT
        path,
        bool_or(coalesce(is_keeper, false)) AS is_keeper,
        bool_or(list_contains($act_on, kind) AND NOT coalesce(is_keeper, false)) AS wants,
        bool_or(kind = 'unsupported') AS unsupported
    FROM raw_findings
    GROUP BY path
),
verdicts AS (
    -- a person's decisions in force on this run's files (`decided`, photo_curate/decisions.py)
    SELECT path,
        min(decision_id) FILTER (verdict = 'keep') AS keep_id,
        min(decision_id) FILTER (verdict = 'remove') AS remove_id
    FROM decided GROUP BY path
),
photo AS (
    SELECT
        pf.photo_id,
        min(v.keep_id) AS keep_id,
        min(v.remove_id) FILTER (pf.role = 'primary' AND pp.path IS NOT NULL) AS remove_id,
        bool_or((coalesce(pp.wants, false) OR (v.remove_id IS NOT NULL AND pp.path IS NOT NULL))
                AND pf.role = 'primary')
            AND NOT bool_or(coalesce(pp.unsupported, false))
            AND NOT bool_or(coalesce(pp.is_keeper, false))
            AND min(v.keep_id) IS NULL AS acted,
        bool_or(pr.path IS NOT NULL) AS protected,
        string_agg(regexp_extract(pf.path, '[^/]*$', 0), ', ' ORDER BY pf.path)
            FILTER (pf.role <> 'primary') AS others
    FROM photo_files pf
    LEFT JOIN per_path pp USING (path)
    LEFT JOIN protected pr USING (path)
    LEFT JOIN verdicts v USING (path)
    GROUP BY pf.photo_id
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
        WHEN ph.keep_id IS NOT NULL THEN 'keep'
        WHEN coalesce(ph.protected, false) THEN 'keep'
        WHEN coalesce(ph.acted, false) THEN $action
        ELSE 'review'
    END AS action,
    f.reason
        || CASE WHEN ph.protected AND NOT p.is_keeper AND ph.acted
                THEN ' [protected folder: never touched]' ELSE '' END
        || CASE WHEN ph.keep_id IS NOT NULL THEN ' [decision ' || ph.keep_id || ': keep]'
                WHEN ph.remove_id IS NOT NULL AND ph.acted
                THEN ' [decision ' || ph.remove_id || ': remove]' ELSE '' END
        -- said once per file (on its first finding kind)
        || CASE WHEN pf.role = 'primary' AND ph.others IS NOT NULL
                 AND row_number() OVER (PARTITION BY f.path ORDER BY f.kind) = 1
                THEN ' [one photo with ' || ph.others || ']' ELSE '' END AS reason,
    -- stable across runs: the same kind of finding on the same file has the same id
    left(sha256(f.kind || ':' || f.path), 16) AS finding_id
FROM raw_findings f
JOIN per_path p USING (path)
LEFT JOIN photo_files pf USING (path)
LEFT JOIN photo ph USING (photo_id)
