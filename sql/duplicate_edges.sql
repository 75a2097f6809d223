-- duplicate (edges): the same picture. Either byte-identical files (same sha256), or a pair
-- whose pixels show a copy (pair_checks.relation = 'copy', see relation.sql: re-encoded,
-- resized, slightly cropped, mildly corrected) at embedding similarity >= $duplicate_similarity.
-- A darkened, blown-out or blurred version of a photo is a variant, not a copy: its own rule
-- reports it (and of copies, keeper.sql keeps one that no defect rule flags). Groups are stars
-- around the best copy (photo_curate/graph.py): every copy planned for removal has one of
-- these edges with its group's keeper; chains do not make groups. `evidence` says what the
-- pixels showed. The files in `ungrouped` take no part, byte copies included: a photo's other
-- images (the RAW beside its JPEG: the photo is judged by its primary file) and the files a
-- person said not to group (tasks/findings.py).
WITH valid AS (
    SELECT path, sha256 FROM images
    WHERE is_valid AND path NOT IN (SELECT path FROM ungrouped)
),
bytes AS (
    SELECT min(path) OVER (PARTITION BY sha256) AS path_a, path AS path_b,
           1.0::DOUBLE AS similarity, 'byte-identical' AS evidence
    FROM valid
),
visual AS (
    SELECT k.path_a, k.path_b, k.similarity, k.evidence
    FROM pair_checks k
    WHERE k.relation = 'copy' AND k.evidence <> 'byte-identical'
      AND k.similarity >= $duplicate_similarity
)
SELECT path_a, path_b, similarity, evidence FROM bytes WHERE path_a <> path_b
UNION ALL
SELECT path_a, path_b, similarity, evidence FROM visual
