-- keeper: which member of each group stays. `members(group_id, path, score)` holds the groups.
-- Order: a preferred folder first (config), then the photo that holds the RAW original, then
-- the one with a sidecar (a person's edits and ratings; `photo_sets`), then the strategy $keep ('largest', 'newest',
-- 'oldest' or 'best'), then a copy no defect rule flags (`flags`: a mildly brightened copy can
-- cross the bright threshold its original stays below; a copy that looks like a graphic,
-- flat_share >= $graphic_flat_share, was not judged and is no better than a flagged one),
-- then the best copy: most pixels (resized and cropped copies lose), then
-- the one that still carries the camera's capture time (re-encoding usually drops EXIF), then
-- the clearly higher JPEG quality (a re-encode at quality 40 loses to its original at 92),
-- then the earliest file (copies and re-encodes are written after their original), then the
-- larger file, the sharper, the shorter path. File size alone is no measure of quality
-- between copies of equal pixels: a brightened or re-encoded-at-higher-quality copy is larger
-- without being better. The reason says what the pixels showed (`evidence(path_a, path_b,
-- evidence)`: the group's edges) and what decided it against the keeper.
WITH m AS (
    SELECT
        g.group_id, g.path, g.score,
        i.width::BIGINT * i.height::BIGINT AS pixels, i.width, i.height, i.size_bytes,
        i.sharpness, coalesce(i.captured_at, i.mtime) AS taken, i.mtime,
        i.captured_at IS NOT NULL AS has_exif,
        -- JPEG quality in bands of 10 (lossless formats count as 100): a clearly
        -- lower-quality re-encode loses, small differences fall through to age
        coalesce(i.jpeg_quality, 100) // 10 AS quality_band, i.jpeg_quality,
        coalesce(p.preferred, false) AS preferred, i.sha256,
        coalesce(f.dark OR f.bright OR f.blurry, false) AS flagged,
        coalesce(i.flat_share, 0) >= $graphic_flat_share AS unjudged,
        coalesce(ps.has_raw, false) AS has_raw, ps.raw_path,
        coalesce(ps.has_sidecar, false) AS has_sidecar
    FROM members g
    JOIN images i ON i.path = g.path
    LEFT JOIN photo_sets ps ON ps.path = g.path
    LEFT JOIN prefs p ON p.path = g.path
    LEFT JOIN flags f ON f.path = g.path
),
ranked AS (
    SELECT *,
        row_number() OVER (
            PARTITION BY group_id
            ORDER BY
                preferred DESC,
                has_raw DESC,
                has_sidecar DESC,
                CASE WHEN $keep = 'largest' THEN size_bytes END DESC NULLS LAST,
                CASE WHEN $keep = 'newest' THEN taken END DESC NULLS LAST,
                CASE WHEN $keep = 'oldest' THEN taken END ASC NULLS LAST,
                CASE WHEN NOT unjudged THEN flagged END ASC NULLS LAST,
                pixels DESC NULLS LAST,
                has_exif DESC,
                quality_band DESC,
                mtime ASC NULLS LAST,
                size_bytes DESC NULLS LAST,
                sharpness DESC NULLS LAST,
                length(path) ASC,
                path ASC
        ) AS rank,
        count(*) OVER (PARTITION BY group_id) AS n_members
    FROM m
),
k AS (
    SELECT group_id, path AS keeper, pixels AS k_pixels, width AS k_w, height AS k_h,
           size_bytes AS k_size, sharpness AS k_sharp, taken AS k_taken, preferred AS k_pref,
           has_exif AS k_exif, mtime AS k_mtime, quality_band AS k_band, jpeg_quality AS k_q,
           sha256 AS k_sha, flagged AS k_flagged, unjudged AS k_unjudged, has_raw AS k_raw,
           raw_path AS k_raw_path, has_sidecar AS k_sidecar
    FROM ranked WHERE rank = 1
)
SELECT
    r.group_id, r.path, r.score, r.rank, r.rank = 1 AS is_keeper, r.n_members, k.keeper,
    CASE
        WHEN r.rank = 1 THEN printf('keeper of %d: %dx%d, %d bytes', r.n_members, r.width, r.height,
                                     r.size_bytes)
        ELSE 'copy of ' || k.keeper || ' (' || coalesce(
            CASE WHEN r.sha256 = k.k_sha THEN 'byte-identical' END, ev.evidence, 'the same picture'
        ) || '), kept because it ' || CASE
            WHEN k.k_pref AND NOT r.preferred THEN 'is in a preferred folder'
            WHEN k.k_raw AND NOT r.has_raw THEN 'is the photo with the RAW original' ||
                coalesce(' (' || k.k_raw_path || ')', '')
            WHEN k.k_sidecar AND NOT r.has_sidecar THEN 'carries a sidecar (edits, ratings)'
            WHEN $keep = 'largest' AND k.k_size > r.size_bytes THEN 'is the largest file'
            WHEN $keep = 'newest' AND k.k_taken > r.taken THEN 'is the newest'
            WHEN $keep = 'oldest' AND k.k_taken < r.taken THEN 'is the oldest'
            WHEN r.flagged AND NOT r.unjudged AND NOT k.k_flagged AND NOT k.k_unjudged
                THEN 'is not flagged dark, bright or blurry'
            WHEN k.k_pixels > r.pixels THEN printf('has more pixels (%dx%d vs %dx%d)',
                                                    k.k_w, k.k_h, r.width, r.height)
            WHEN k.k_exif AND NOT r.has_exif THEN 'keeps the camera capture time (EXIF)'
            WHEN k.k_band > r.quality_band THEN printf('is less compressed (JPEG quality %s vs %s)',
                coalesce(k.k_q::VARCHAR, 'lossless'), coalesce(r.jpeg_quality::VARCHAR, 'lossless'))
            WHEN k.k_mtime < r.mtime THEN 'is the earlier file'
            WHEN k.k_size > r.size_bytes THEN printf('is a larger file (%d vs %d bytes)',
                                                      k.k_size, r.size_bytes)
            WHEN k.k_sharp > r.sharpness THEN 'is sharper'
            ELSE 'has the shorter path'
        END
    END AS reason
FROM ranked r
JOIN k USING (group_id)
LEFT JOIN (SELECT least(path_a, path_b) AS lo, greatest(path_a, path_b) AS hi,
                  any_value(evidence) AS evidence
           FROM evidence GROUP BY ALL) ev
  ON ev.lo = least(r.path, k.keeper) AND ev.hi = greatest(r.path, k.keeper)
