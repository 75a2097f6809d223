-- invalid: a file taken as an image that does not fully decode: empty, truncated, corrupt,
-- too small, too large or unreadable. fastdup passes truncated JPEGs as valid; the inspect
-- step decodes every byte, so `error` says why.
SELECT path, NULL::DOUBLE AS score, error AS reason
FROM images
WHERE NOT is_valid
