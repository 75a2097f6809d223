-- bright: overexposed. Absolute: more than $bright_clipped of the pixels are blown out (a
-- channel at 250 or more) and the mean is above $bright_mean. Relative: a copy of the same
-- picture (its pixels show the same frame: pair_checks relation copy or variant) is darker by at least
-- $bright_relative_lift levels of mean, and this one has lost its highlights
-- (blown share > $bright_relative_clipped): the overexposed copy, not its normal twin.
-- score = mean brightness.
WITH edges AS (
    SELECT path_a AS path, path_b AS other FROM pair_checks WHERE relation IN ('copy', 'variant')
    UNION ALL
    SELECT path_b, path_a FROM pair_checks WHERE relation IN ('copy', 'variant')
),
relative AS (
    SELECT e.path, max(i.mean - o.mean) AS lift,
           first(e.other ORDER BY i.mean - o.mean DESC, e.other) AS darker  -- ties: by path
    FROM edges e JOIN images i ON i.path = e.path JOIN images o ON o.path = e.other
    -- compare with normally exposed shots only (not with a darkened or blown-out twin)
    WHERE o.p95 >= $dark_relative_p95 AND o.clipped_bright <= $bright_relative_clipped
    GROUP BY e.path
)
SELECT
    i.path,
    i.mean AS score,
    CASE
        WHEN i.clipped_bright > $bright_clipped AND i.mean > $bright_mean
            THEN printf('bright: %.0f%% of pixels blown out (mean %.0f)', 100 * i.clipped_bright, i.mean)
        ELSE printf('bright: %.0f levels brighter than its copy %s, %.0f%% blown out',
                    r.lift, r.darker, 100 * i.clipped_bright)
    END AS reason
FROM images i
LEFT JOIN relative r USING (path)
WHERE i.is_valid
  AND ((i.clipped_bright > $bright_clipped AND i.mean > $bright_mean)
       OR (coalesce(r.lift, 0) >= $bright_relative_lift
           AND i.clipped_bright > $bright_relative_clipped))
