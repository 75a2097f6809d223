-- photo_files: which files make one photo, by the conventions photographers' tools use.
-- Files of one folder with the same name stem are one photo (IMG_1234.CR2 + IMG_1234.JPG,
-- IMG_1234.HEIC + IMG_1234.MOV), and a sidecar named after the stem or after the whole file
-- name (IMG_1234.xmp, IMG_1234.CR2.xmp, darktable's IMG_1234_01.CR2.xmp, .AAE and iOS's
-- IMG_O1234.AAE, .pp3, .dop) belongs to it. That holds only where
-- it is unambiguous: at most one RAW and one other image per stem, taken within 2 seconds of
-- each other where both carry a capture time. Otherwise every image is a photo of its own, a
-- sidecar named after a whole file name still follows that file, and a sidecar or movie whose
-- image is ambiguous belongs to no photo (it is never moved).
-- Roles: `primary` (the image that stands for the photo: a readable still, else a readable
-- RAW), `raw` and `still` (its other image), `sidecar`, `movie`. Every image is in one photo.
WITH f AS (
    SELECT
        fl.path, fl.size_bytes, fl.mtime_ns, fl.status,
        regexp_extract(fl.path, '^(.*/)?', 0) AS folder,
        regexp_extract(fl.path, '[^/]*$', 0) AS name,
        lower(regexp_extract(name, '(\.[^./]*)$', 1)) AS ext,
        CASE WHEN ext = '' THEN name ELSE name[:length(name) - length(ext)] END AS base,
        lower(regexp_extract(base, '(\.[^./]*)$', 1)) AS base_ext,
        -- a sidecar's image: IMG_1234.CR2.xmp names IMG_1234.CR2, IMG_1234.xmp the stem
        CASE WHEN list_contains($sidecar_exts, ext) AND list_contains($image_exts, base_ext)
             THEN base[:length(base) - length(base_ext)] ELSE base END AS stem,
        lower(folder || stem) AS stem_key,
        lower(folder || base) AS name_key,  -- a sidecar: the file it is named after
        lower(folder || name) AS file_key,
        -- darktable's second version of a RAW: IMG_1234_01.CR2.xmp belongs to IMG_1234.CR2;
        -- iOS keeps the original's adjustments as IMG_O1234.AAE beside IMG_1234.HEIC
        lower(folder || regexp_replace(base, '_[0-9]{2}(\.[^./]+)$', '\1')) AS version_key,
        lower(folder || regexp_replace(stem, '^(IMG)_O([0-9]+)$', '\1_\2')) AS original_key,
        CASE
            WHEN fl.status = 'image' AND list_contains($raw_exts, ext) THEN 'raw'
            WHEN fl.status = 'image' THEN 'still'
            WHEN list_contains($sidecar_exts, ext) THEN 'sidecar'
            WHEN list_contains($movie_exts, ext) THEN 'movie'
        END AS kind
    FROM files fl
    WHERE fl.entry_type = 'file' AND fl.status IN ('image', 'skipped')
),
img AS (
    SELECT f.*, coalesce(i.is_valid, false) AS is_valid, i.captured_at, i.sha256
    FROM f LEFT JOIN images i USING (path)
    WHERE f.kind IN ('raw', 'still')
),
stems AS (
    SELECT stem_key,
        count(*) FILTER (kind = 'raw') AS n_raw,
        count(*) FILTER (kind = 'still') AS n_still,
        coalesce(max(captured_at) - min(captured_at) <= INTERVAL 2 SECOND, true) AS same_time
    FROM img GROUP BY stem_key
),
photo_of_image AS (
    SELECT img.path, img.kind, img.file_key, img.stem_key,
        s.n_raw <= 1 AND s.n_still <= 1 AND s.same_time AS is_set,
        CASE WHEN s.n_raw <= 1 AND s.n_still <= 1 AND s.same_time
             THEN 'set:' || img.stem_key ELSE 'file:' || img.path END AS set_key,
        row_number() OVER (
            PARTITION BY CASE WHEN s.n_raw <= 1 AND s.n_still <= 1 AND s.same_time
                              THEN img.stem_key ELSE img.path END
            ORDER BY img.is_valid DESC, img.kind = 'still' DESC, img.path
        ) = 1 AS is_primary
    FROM img JOIN stems s USING (stem_key)
),
attached AS (
    -- sidecars: to the image of their whole file name first, else to their stem's set
    SELECT f.path, f.kind,
        coalesce(
            (SELECT any_value(p.set_key) FROM photo_of_image p WHERE p.file_key = f.name_key),
            (SELECT any_value(p.set_key) FROM photo_of_image p WHERE p.file_key = f.version_key),
            (SELECT any_value(p.set_key) FROM photo_of_image p
             WHERE p.stem_key = f.stem_key AND p.is_set),
            (SELECT any_value(p.set_key) FROM photo_of_image p
             WHERE p.stem_key = f.original_key AND p.is_set)
        ) AS set_key
    FROM f
    WHERE f.kind = 'sidecar'
    UNION ALL
    -- movies: only to an unambiguous set with a still, and only as short as a Live Photo's
    -- movie (a few seconds, a few MB): a film beside its poster frame is no Live Photo
    SELECT f.path, f.kind,
        (SELECT any_value(p.set_key) FROM photo_of_image p
         WHERE p.stem_key = f.stem_key AND p.is_set AND p.kind = 'still') AS set_key
    FROM f
    WHERE f.kind = 'movie' AND f.size_bytes <= $live_movie_max_bytes
),
members AS (
    SELECT path, set_key, CASE WHEN is_primary THEN 'primary' ELSE kind END AS role
    FROM photo_of_image
    UNION ALL
    SELECT path, set_key, kind FROM attached WHERE set_key IS NOT NULL
)
SELECT
    $run_id AS run_id,
    left(sha256(m.set_key), 16) AS photo_id,
    m.path,
    m.role,
    pr.path AS primary_path,
    count(*) OVER (PARTITION BY m.set_key) AS n_files,
    f.size_bytes,
    f.mtime_ns
FROM members m
JOIN f USING (path)
JOIN (SELECT set_key, path FROM photo_of_image WHERE is_primary) pr USING (set_key)
