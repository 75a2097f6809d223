-- near_duplicate (edges): similar shots of one scene, shown by their pixels (relation.sql):
-- burst frames, stereo views, edits, re-framings (`similar`), and darkened, overexposed or
-- blurred versions of a frame (`variant`). Groups are stars around the best shot of each
-- scene over pictures (a duplicate group counts as its keeper; tasks/findings.py), so shots
-- that are each like a third one but not like each other are not chained. Review by default.
SELECT path_a, path_b, similarity, evidence, relation
FROM pair_checks
WHERE relation IN ('similar', 'variant')
