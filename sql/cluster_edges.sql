-- clusters (edges): groups of similar shots for browsing the collection by scene: pairs whose
-- pixels show a copy, a variant or a similar shot (relation.sql) at embedding similarity >=
-- $cluster_similarity, and every duplicate edge, so copies land in one cluster.
SELECT path_a, path_b, similarity FROM pair_checks
WHERE relation <> 'none' AND similarity >= $cluster_similarity
UNION ALL
SELECT path_a, path_b, similarity FROM dup_edges
