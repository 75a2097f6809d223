-- clusters (edges): groups of similar shots (similarity >= $cluster_similarity), for browsing
-- the collection by scene. Duplicate edges are included so copies land in one cluster.
SELECT path_a, path_b, similarity FROM pairs WHERE similarity >= $cluster_similarity
UNION ALL
SELECT path_a, path_b, similarity FROM dup_edges
