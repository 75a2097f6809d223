-- bright: overexposed, as a photographer sees it: the highlights are blown (a channel at 250
-- or more) in much of the frame. Absolute: more than $bright_clipped of the pixels are blown
-- and the mean is above $bright_mean (colours burnt out by a too long exposure); or most of
-- the frame is in the top tones (highlights, luminance >= 200, above $bright_highlights) with
-- more than $bright_highlight_clipped blown (a washed-out shot). A snow scene or a
-- white-background shot keeps its mid tones and subject and stays below. Relative: a copy of
-- the same picture (pair_checks relation copy or variant) is darker by at least
-- $bright_relative_lift levels of mean, and this one has lost its highlights (blown share >
-- $bright_relative_clipped): the overexposed copy, not its normal twin. Graphics
-- (flat_share >= $graphic_flat_share) are not judged. score = mean brightness.
WITH edges AS (
    SELECT path_a AS path, path_b AS other FROM pair_checks WHERE relation IN ('copy', 'variant')
    UNION ALL
    SELECT path_b, path_a FROM pair_checks WHERE relation IN ('copy', 'variant')
),
relative AS (
    SELECT e.path, max(i.mean - o.mean) AS lift,
           first(e.other ORDER BY i.mean - o.mean DESC, e.other) AS darker  -- ties: by path
    FROM edges e JOIN images i ON i.path = e.path JOIN images o ON o.path = e.other
    -- compare with normally exposed copies only (not with a darkened or blown-out twin)
    WHERE o.p95 >= $dark_relative_p95 AND o.clipped_bright <= $bright_relative_clipped
    GROUP BY e.path
),
absolute AS (
    SELECT path,
           (clipped_bright > $bright_clipped AND mean > $bright_mean)
           OR (highlights > $bright_highlights AND clipped_bright > $bright_highlight_clipped)
               AS blown
    FROM images
    WHERE is_valid AND coalesce(flat_share, 0) < $graphic_flat_share
)
SELECT
    i.path,
    i.mean AS score,
    CASE
        WHEN a.blown
            THEN printf('bright: %.0f%% of pixels blown out, %.0f%% in the top tones (mean %.0f)',
                        100 * i.clipped_bright, 100 * i.highlights, i.mean)
        ELSE printf('bright: %.0f levels brighter than its copy %s, %.0f%% blown out',
                    r.lift, r.darker, 100 * i.clipped_bright)
    END AS reason
FROM images i
JOIN absolute a USING (path)
LEFT JOIN relative r USING (path)
WHERE a.blown
   OR (coalesce(r.lift, 0) >= $bright_relative_lift AND i.clipped_bright > $bright_relative_clipped)
