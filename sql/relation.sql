-- relation (pair_checks): what the pixels say about each candidate pair (tasks/verify.py,
-- photo_curate/compare.py). One of:
--   copy     the same picture: re-encoded, resized, slightly cropped (each side of both views
--            at least $copy_min_overlap in the overlap), mildly corrected in exposure or white
--            balance. After tone matching the luminance differs little everywhere (mean
--            <= $copy_max_mean_diff, worst 8 x 8 window <= $copy_max_worst_block, and no window
--            stands out: <= $copy_max_block_ratio x the typical one), the colours match (chroma
--            correlation, saturation, shift, residual and worst window), and neither is
--            blurred or sharpened (detail ratio on the grid, sharpness at a common scale of the
--            512 px analysis copies). Seen closer, from the files at up to 512 px with half-
--            pixel shifts forgiven, no 16 x 16 window differs by more than
--            $copy_max_fine_block levels (a subject moved by a few pixels, a small retouch).
--            Where that closer look was taken it decides the differences, and the
--            thumbnails need only agree within a variant's bounds.
--            Byte-identical contents are copies without measuring.
--            Two plain images (no structure) are copies only when their raw colours match,
--            their shapes agree as a small crop's would (aspect ratios within
--            $copy_min_overlap) and their faint patterns, stretched and laid over each other
--            from the files, differ by at most $copy_max_fine_block in every 16 x 16 window (a
--            re-framing, crop or retouch moves the pattern); a plain picture cut to another
--            shape, re-patterned or not looked at closer is a similar shot.
--            Of two views framed alike (aligned corners within $copy_alike_max_reframe of the
--            long side: no crop between them) the thumbnails must agree as a copy's even where
--            the closer look was taken: only a crop makes a fine texture alias there, and a
--            next frame with little motion is alike everywhere but in a few windows.
--   variant  the same frame with a strong tone or blur change (a darkened, overexposed or
--            blurred copy): same framing, structure within $variant_max_mean_diff /
--            $variant_max_worst_block after tone matching (or after the best blur of the
--            sharper one), and a change in tones or detail beyond a copy's. A change of colour
--            alone (B&W, sepia, a grade) makes a similar shot. Only the relative dark, bright
--            and blurry rules use variants.
--   similar  the same scene, other content (burst frames, stereo views, B&W, sepia, graded or
--            filtered edits, retouches, re-framings): embedding similarity at least
--            $near_duplicate_similarity and aligned luminance correlation >= $similar_min_ncc.
--   none     different pictures the embedding found close (e.g. dark shots of other scenes).
-- Two files whose cameras recorded different capture times (EXIF, to the sub-second where it
-- is recorded) are two shots, never a copy or variant: a copy keeps its capture time or has
-- none (a burst of a still scene can look like one picture).
WITH c AS (
    SELECT k.*,
           coalesce(a.sharp_512 - b.sharp_512, a.sharp_256 - b.sharp_256,
                    a.sharp_128 - b.sharp_128) AS sharpness_diff,
           a.mean - b.mean AS mean_change,
           coalesce(a.captured_at <> b.captured_at, false) AS other_moment,
           a.captured_at AS captured_a, b.captured_at AS captured_b,
           least(a.width * b.height, b.width * a.height)::DOUBLE
               / nullif(greatest(a.width * b.height, b.width * a.height), 0) AS aspect_match
    FROM checks k
    JOIN images a ON a.path = k.path_a
    JOIN images b ON b.path = k.path_b
),
t AS (
    SELECT *,
        NOT coalesce(flat, false) AND overlap >= $copy_min_overlap
            AND mean_diff <= $variant_max_mean_diff AND worst_block <= $variant_max_worst_block
            AND (tone_shift > $copy_max_tone_shift OR contrast_ratio < $copy_min_contrast_ratio
                 OR detail_ratio < $copy_min_detail_ratio
                 OR abs(coalesce(sharpness_diff, 0)) > $copy_max_sharpness_diff)
            AS same_frame,
        NOT coalesce(flat, false) AND overlap >= $copy_min_overlap AND blur_sigma > 0
            AND blur_diff <= $variant_max_mean_diff AND blur_worst_block <= $variant_max_worst_block
            AS blurred_frame,
        coalesce(flat AND raw_diff <= $copy_max_flat_diff, false) AS plain_colours,
        coalesce(flat AND raw_diff <= $copy_max_flat_diff
                 AND aspect_match >= $copy_min_overlap
                 AND fine_block <= $copy_max_fine_block, false) AS same_plain,
        coalesce(NOT flat AND overlap >= $copy_min_overlap
            -- differences: the closer look decides where it was taken (the thumbnails of a
            -- mostly plain picture make JPEG noise in its one textured spot stand out, those
            -- of a fine texture alias after a small crop), the thumbnails only roughly then
            AND CASE WHEN NOT coalesce(isnan(fine_block), true)
                     THEN mean_diff <= $variant_max_mean_diff
                          AND worst_block <= CASE
                              WHEN coalesce(reframe, 0) <= $copy_alike_max_reframe
                              THEN $copy_max_worst_block ELSE $variant_max_worst_block END
                     ELSE mean_diff <= $copy_max_mean_diff
                          AND worst_block <= $copy_max_worst_block
                          AND block_ratio <= $copy_max_block_ratio END
            AND tone_shift <= $copy_max_tone_shift AND contrast_ratio >= $copy_min_contrast_ratio
            AND chroma_corr >= $copy_min_chroma_corr
            AND saturation_ratio >= $copy_min_saturation_ratio
            AND chroma_shift <= $copy_max_chroma_shift
            AND chroma_residual <= $copy_max_chroma_residual
            AND worst_chroma_block <= $copy_max_chroma_block
            AND detail_ratio >= $copy_min_detail_ratio
            AND abs(coalesce(sharpness_diff, 0)) <= $copy_max_sharpness_diff
            AND (coalesce(isnan(fine_block), true) OR fine_block <= $copy_max_fine_block),
            false) AS same_picture
    FROM c
),
s AS (
    SELECT *,
        other_moment AND coalesce(same_plain OR same_picture OR same_frame OR blurred_frame,
                                  false) AS two_shots
    FROM t
),
r AS (
    SELECT *,
        CASE
            WHEN same_bytes THEN 'copy'
            WHEN two_shots THEN 'similar'
            WHEN same_plain OR same_picture THEN 'copy'
            WHEN coalesce(same_frame OR blurred_frame, false) THEN 'variant'
            WHEN plain_colours THEN 'similar'
            WHEN NOT coalesce(flat, true) AND similarity >= $near_duplicate_similarity
                 AND ncc >= $similar_min_ncc THEN 'similar'
            ELSE 'none'
        END AS relation
    FROM s
)
SELECT
    $run_id AS run_id, path_a, path_b, similarity, relation,
    CASE
        WHEN same_bytes THEN 'byte-identical'
        WHEN two_shots THEN printf('two shots: alike, but taken at %s and %s (EXIF)',
                                   strftime(captured_a, '%Y-%m-%d %H:%M:%S.%g'),
                                   strftime(captured_b, '%Y-%m-%d %H:%M:%S.%g'))
        WHEN relation = 'copy' AND flat THEN printf(
            'same plain picture: colours differ by %.1f, faint pattern: worst window %.1f',
            raw_diff, fine_block)
        WHEN relation = 'copy' THEN printf(
            'same picture: aligned (%.0f%% overlap), mean diff %.1f, worst block %.1f, colour matches%s',
            100 * overlap, mean_diff, worst_block,
            CASE WHEN NOT isnan(fine_block)
                 THEN printf(', closer look: worst window %.1f', fine_block) ELSE '' END)
        WHEN relation = 'variant' AND blurred_frame AND NOT coalesce(same_frame, false) THEN printf(
            'same frame, one blurred: a blur of %.1f px explains it (mean diff %.1f)',
            blur_sigma, blur_diff)
        WHEN relation = 'variant' THEN printf(
            'same frame, other exposure or detail: %.0f levels apart, mean diff %.1f after tone matching',
            abs(mean_change), mean_diff)
        WHEN mean_diff IS NULL AND ncc IS NOT NULL THEN printf(
            'other framing: views overlap %.0f%% of a side, correlation %.2f', 100 * overlap, ncc)
        WHEN ncc IS NULL AND NOT coalesce(flat, false) THEN 'not compared (no thumbnail or no alignment)'
        WHEN plain_colours AND aspect_match < $copy_min_overlap THEN printf(
            'plain picture cut to another shape: aspect ratios %.2f apart', 1 - aspect_match)
        WHEN plain_colours AND fine_block > $copy_max_fine_block THEN printf(
            'plain picture, its faint pattern moved or changed (re-framed, cropped, retouched): worst window %.1f',
            fine_block)
        WHEN plain_colours THEN 'plain picture, same colours, not looked at closer (files not read)'
        WHEN flat THEN printf('plain picture, colours differ by %.1f', raw_diff)
        WHEN NOT isnan(fine_block) AND fine_block > $copy_max_fine_block THEN printf(
            'a small change seen closer (a moved subject, a retouch): worst window %.1f levels',
            fine_block)
        WHEN coalesce(reframe, 0) <= $copy_alike_max_reframe AND worst_block > $copy_max_worst_block
             AND worst_block <= $variant_max_worst_block THEN printf(
            'framed alike, but a local change: worst block %.1f (a next frame, a moved subject)',
            worst_block)
        WHEN block_ratio > $copy_max_block_ratio OR worst_block > $copy_max_worst_block THEN printf(
            'a local change: worst block %.1f (typical %.1f), mean diff %.1f',
            worst_block, worst_block / block_ratio - 0.5, mean_diff)
        WHEN chroma_corr < $copy_min_chroma_corr OR saturation_ratio < $copy_min_saturation_ratio
             OR chroma_shift > $copy_max_chroma_shift OR chroma_residual > $copy_max_chroma_residual
             OR worst_chroma_block > $copy_max_chroma_block THEN printf(
            'other colours: chroma correlation %.2f, saturation x%.2f, shift %.1f, residual %.1f',
            chroma_corr, saturation_ratio, chroma_shift, chroma_residual)
        WHEN detail_ratio < $copy_min_detail_ratio
             OR abs(coalesce(sharpness_diff, 0)) > $copy_max_sharpness_diff THEN printf(
            'other detail: detail ratio %.2f, sharpness differs by %.2f',
            detail_ratio, coalesce(sharpness_diff, 0))
        WHEN overlap < $copy_min_overlap THEN printf('re-framed: views overlap %.0f%% of a side', 100 * overlap)
        ELSE printf('other tones: mean diff %.1f, tone shift %.1f, contrast x%.2f',
                    mean_diff, tone_shift, contrast_ratio)
    END AS evidence,
    ncc, overlap, flat, raw_diff, tone_shift, contrast_ratio, mean_diff, worst_block,
    block_ratio, chroma_corr, saturation_ratio, chroma_shift, chroma_residual,
    worst_chroma_block, detail_ratio, blur_sigma, blur_diff, blur_worst_block, fine_block,
    reframe, sharpness_diff
FROM r
