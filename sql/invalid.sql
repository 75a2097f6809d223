-- invalid: a file taken as an image that is shown to be damaged: empty, truncated, corrupt
-- where its format is understood, not an image at all, too small, too large or unreadable.
-- fastdup passes truncated JPEGs as valid; the inspect step decodes every byte, so `error`
-- says why. A sound file that no decoder here reads is `unsupported` instead.
SELECT path, NULL::DOUBLE AS score, error AS reason
FROM images
WHERE NOT is_valid AND NOT coalesce(unsupported, false)
