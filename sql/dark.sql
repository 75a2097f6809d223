-- dark: underexposed. Absolute: nothing in the frame reaches the upper tones (the brightest
-- 1 % of pixels, p99, stay below $dark_p99, and even the brightest spot, `max` at 256 px,
-- below $dark_max) and the mean is below $dark_mean: an underexposed shot has no highlights
-- left, while a night sky with stars, a street with lamps or a low-key portrait keeps its
-- bright spots. Relative: a copy of the same picture (its pixels show the same frame:
-- pair_checks relation copy or variant) is brighter by at least $dark_relative_drop levels of
-- mean, and this one has few bright tones left (p95 < $dark_relative_p95): the darkened copy,
-- not its normal twin. Graphics (flat_share >= $graphic_flat_share: screenshots, renders,
-- plain wallpapers) are dark by design and not judged. score = p99.
WITH edges AS (
    SELECT path_a AS path, path_b AS other FROM pair_checks WHERE relation IN ('copy', 'variant')
    UNION ALL
    SELECT path_b, path_a FROM pair_checks WHERE relation IN ('copy', 'variant')
),
relative AS (
    SELECT e.path, max(o.mean - i.mean) AS drop,
           first(e.other ORDER BY o.mean - i.mean DESC, e.other) AS brighter  -- ties: by path
    FROM edges e JOIN images i ON i.path = e.path JOIN images o ON o.path = e.other
    -- compare with normally exposed copies only (not with a darkened or blown-out twin)
    WHERE o.p95 >= $dark_relative_p95 AND o.clipped_bright <= $bright_relative_clipped
    GROUP BY e.path
)
SELECT
    i.path,
    i.p99 AS score,
    CASE
        WHEN i.p99 < $dark_p99 AND i.max < $dark_max AND i.mean < $dark_mean
            THEN printf('dark: 99%% of pixels below %d of 255 (mean %.0f)', i.p99::INTEGER + 1, i.mean)
        ELSE printf('dark: %.0f levels darker than its copy %s (p95 %d)',
                    r.drop, r.brighter, i.p95::INTEGER)
    END AS reason
FROM images i
LEFT JOIN relative r USING (path)
WHERE i.is_valid
  AND coalesce(i.flat_share, 0) < $graphic_flat_share
  AND ((i.p99 < $dark_p99 AND i.max < $dark_max AND i.mean < $dark_mean)
       OR (coalesce(r.drop, 0) >= $dark_relative_drop AND i.p95 < $dark_relative_p95))
