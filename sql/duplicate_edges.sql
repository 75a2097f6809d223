-- duplicate (edges): the same picture. Either byte-identical files (same sha256), or a pair
-- that looks identical: fastdup similarity >= $duplicate_similarity (resized, recompressed,
-- slightly cropped or brightened copies), with nearly the same brightness (mean within
-- $duplicate_max_mean_diff of 255) and detail (sharpness within $duplicate_max_sharpness_diff
-- at a common scale), and neither flagged dark, bright or blurry unless both are. A darkened,
-- blown-out or blurred version of a photo is a defect of its own (its own rule reports it,
-- and near_duplicate links it for review), not a copy to be quarantined in its place.
-- Groups are stars around the best copy (photo_curate/graph.py): every copy planned for
-- removal has one of these edges with its group's keeper; chains do not make groups.
WITH valid AS (
    SELECT path, sha256 FROM images WHERE is_valid
),
bytes AS (
    SELECT min(path) OVER (PARTITION BY sha256) AS path_a, path AS path_b,
           1.0::DOUBLE AS similarity
    FROM valid
),
visual AS (
    SELECT p.path_a, p.path_b, p.similarity
    FROM pairs p
    JOIN images a ON a.path = p.path_a
    JOIN images b ON b.path = p.path_b
    JOIN flags fa ON fa.path = p.path_a
    JOIN flags fb ON fb.path = p.path_b
    WHERE p.similarity >= $duplicate_similarity
      AND abs(a.mean - b.mean) <= $duplicate_max_mean_diff
      AND abs(coalesce(a.sharp_512 - b.sharp_512, a.sharp_256 - b.sharp_256,
                       a.sharp_128 - b.sharp_128, 0)) <= $duplicate_max_sharpness_diff
      AND fa.dark = fb.dark AND fa.bright = fb.bright AND fa.blurry = fb.blurry
)
SELECT path_a, path_b, similarity FROM bytes WHERE path_a <> path_b
UNION ALL
SELECT path_a, path_b, similarity FROM visual
