-- best shot: which member of each group of similar shots is the best, and why. A suggestion
-- for review: near duplicates are acted on only when `act_on` lists them. `members(group_id,
-- path, score)` holds the groups (copies of one picture included; `pic(path, picture)` maps a
-- copy to its picture's keeper), `evidence(path_a, path_b, evidence)` what the pixels showed
-- between pictures, `flags(path, dark, bright, blurry)` the defects. Order:
-- no defect first, then the sharpest (log10 detail at 256 px in bands of 0.1: about 25 %),
-- then the best exposed (least of the frame clipped dark or bright, in bands of 2 %), then
-- the most pixels, the keeper of its copies (keeper.sql's order: `dup_order`), the path.
WITH m AS (
    SELECT
        g.group_id, g.path, g.score,
        i.width::BIGINT * i.height::BIGINT AS pixels, i.width, i.height,
        coalesce(f.dark OR f.bright OR f.blurry, false) AS defect,
        coalesce(i.sharp_256, i.sharp_128, i.sharpness) AS detail,
        round(coalesce(i.sharp_256, i.sharp_128, i.sharpness, -9) * 10) AS detail_band,
        coalesce(i.clipped_dark, 0) + coalesce(i.clipped_bright, 0) AS clipped,
        round((coalesce(i.clipped_dark, 0) + coalesce(i.clipped_bright, 0)) * 50) AS clip_band,
        coalesce(d.rank, 0) AS copy_rank,
        coalesce(pm.picture <> g.path, false) AS a_copy
    FROM members g
    JOIN images i ON i.path = g.path
    LEFT JOIN flags f ON f.path = g.path
    LEFT JOIN dup_order d ON d.path = g.path
    LEFT JOIN pic pm ON pm.path = g.path
),
ranked AS (
    SELECT *,
        row_number() OVER (
            PARTITION BY group_id
            ORDER BY a_copy ASC, defect ASC, detail_band DESC NULLS LAST, clip_band ASC, pixels DESC NULLS LAST,
                     copy_rank ASC, path ASC
        ) AS rank,
        count(*) OVER (PARTITION BY group_id) AS n_members
    FROM m
),
k AS (
    SELECT group_id, path AS keeper, defect AS k_defect, detail AS k_detail,
           detail_band AS k_dband, clipped AS k_clipped, clip_band AS k_cband,
           pixels AS k_pixels, width AS k_w, height AS k_h
    FROM ranked WHERE rank = 1
)
SELECT
    r.group_id, r.path, r.score, r.rank, r.rank = 1 AS is_keeper, r.n_members, k.keeper,
    CASE
        WHEN r.rank = 1 THEN printf(
            'best shot of %d similar shots (%s, %dx%d): a suggestion for review, nothing is removed',
            r.n_members,
            CASE WHEN NOT r.defect THEN 'no defect, ' ELSE '' END
                || printf('sharpness %.2f, %.0f%% clipped', r.detail, 100 * r.clipped),
            r.width, r.height)
        WHEN pm.picture = k.keeper THEN 'copy of the best shot ' || k.keeper
            || ' (see its duplicate group)'
        ELSE 'similar shot of ' || k.keeper || ' (' || coalesce(ev.evidence, 'the same scene')
            || '); the best shot is ' || k.keeper || ': ' || CASE
            WHEN NOT k.k_defect AND r.defect THEN 'this one is flagged dark, bright or blurry'
            WHEN k.k_dband > r.detail_band THEN printf('it is sharper (%.2f vs %.2f)', k.k_detail, r.detail)
            WHEN k.k_cband < r.clip_band THEN printf('it is better exposed (%.0f%% vs %.0f%% clipped)',
                                                     100 * k.k_clipped, 100 * r.clipped)
            WHEN k.k_pixels > r.pixels THEN printf('it has more pixels (%dx%d vs %dx%d)',
                                                   k.k_w, k.k_h, r.width, r.height)
            ELSE 'it is the best copy of its picture'
        END
    END AS reason
FROM ranked r
JOIN k USING (group_id)
LEFT JOIN pic pm ON pm.path = r.path
LEFT JOIN (SELECT least(path_a, path_b) AS lo, greatest(path_a, path_b) AS hi,
                  any_value(evidence) AS evidence
           FROM evidence GROUP BY ALL) ev
  ON ev.lo = least(coalesce(pm.picture, r.path), k.keeper)
 AND ev.hi = greatest(coalesce(pm.picture, r.path), k.keeper)
