-- unsupported: a sound file of a format no decoder here reads (camera RAW, JPEG XL, a TIFF
-- compression Pillow lacks). It is not broken: left for review, never planned for removal,
-- whatever `act_on` says (plan.sql). `error` says which format and why it was not analysed.
SELECT path, NULL::DOUBLE AS score, error AS reason
FROM images
WHERE NOT is_valid AND coalesce(unsupported, false)
