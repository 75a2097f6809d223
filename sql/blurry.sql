-- blurry: too little fine detail. `sharpness` is log10 of the Laplacian variance divided by
-- the contrast (variance), so darkening or low contrast alone do not count. A shot is blurry
-- when it is below the absolute floor $blur_sharpness; or when its detail falls off towards
-- fine scales (sharpness at 256 px minus at 128 px below $blur_falloff: natural photos keep
-- about the same detail across scales, blur removes the finest first); or when a copy of the
-- same picture (its pixels show the same frame: pair_checks relation copy or variant) has at
-- least $blur_relative_drop more (log10) detail at a common scale: a blurred copy of a sharp
-- photo. Another photo of the scene (a burst frame) is no measure: it may be sharper by its
-- content. The common scale is the largest of 512, 256, 128 px (long side) that both images
-- reach, so a small copy never makes its large original look blurred. Graphics (flat_share
-- >= $graphic_flat_share: flat colour, no detail by design) are not judged.
WITH edges AS (
    SELECT path_a AS path, path_b AS other FROM pair_checks WHERE relation IN ('copy', 'variant')
    UNION ALL
    SELECT path_b, path_a FROM pair_checks WHERE relation IN ('copy', 'variant')
),
relative AS (
    SELECT
        e.path,
        max(coalesce(o.sharp_512 - i.sharp_512, o.sharp_256 - i.sharp_256,
                     o.sharp_128 - i.sharp_128)) AS drop,
        first(e.other ORDER BY coalesce(o.sharp_512 - i.sharp_512, o.sharp_256 - i.sharp_256,
                                        o.sharp_128 - i.sharp_128) DESC, e.other) AS sharper
    FROM edges e
    JOIN images i ON i.path = e.path
    JOIN images o ON o.path = e.other
    -- the sharper twin must be normally exposed: clipping and darkening change the measure
    WHERE o.p95 >= $dark_relative_p95 AND o.clipped_bright <= $bright_relative_clipped
    GROUP BY e.path
)
SELECT
    i.path,
    i.sharpness AS score,
    CASE
        WHEN i.sharpness < $blur_sharpness
            THEN printf('blurry: sharpness %.2f is below %.2f', i.sharpness, $blur_sharpness)
        WHEN i.sharp_256 - i.sharp_128 < $blur_falloff
            THEN printf('blurry: fine detail falls off (%.2f from 128 to 256 px)',
                        i.sharp_256 - i.sharp_128)
        ELSE printf('blurry: %.1fx less detail than its copy %s', pow(10, r.drop), r.sharper)
    END AS reason
FROM images i
LEFT JOIN relative r USING (path)
WHERE i.is_valid
  AND i.sharpness IS NOT NULL
  AND coalesce(i.flat_share, 0) < $graphic_flat_share
  AND (i.sharpness < $blur_sharpness
       OR coalesce(i.sharp_256 - i.sharp_128, 0) < $blur_falloff
       OR coalesce(r.drop, 0) >= $blur_relative_drop)
