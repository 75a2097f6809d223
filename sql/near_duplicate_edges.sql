-- near_duplicate (edges): similar enough to be the same scene (similarity >=
-- $near_duplicate_similarity), e.g. burst shots, small edits, a darkened copy. Duplicate edges
-- are included so near-duplicate groups contain whole duplicate groups; a group that is only
-- one duplicate group is not reported again. Default action: review.
SELECT path_a, path_b, similarity FROM pairs WHERE similarity >= $near_duplicate_similarity
UNION ALL
SELECT path_a, path_b, similarity FROM dup_edges
