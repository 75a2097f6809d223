-- outlier: unlike anything else in the collection. fastdup lists the weakest nearest-neighbour
-- links (its lower percentile); an image is an outlier when even its nearest neighbour is
-- below $outlier_similarity. For review only: an outlier is often the one good shot of a trip.
SELECT
    path,
    similarity AS score,
    printf('outlier: its most similar image (%s) is only %.2f similar', nearest, similarity) AS reason
FROM outliers
WHERE similarity < $outlier_similarity
