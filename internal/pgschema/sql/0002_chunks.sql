-- The chunk index of the S3 pack store (cas/s3.go). Packs are objects named by the blake3
-- of their bytes; a chunk row says where its stored bytes lie.
CREATE TABLE cas_packs (
    name       bytea       PRIMARY KEY,
    bytes      bigint      NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE cas_chunks (
    hash   bytea    PRIMARY KEY,
    pack   bytea    NOT NULL REFERENCES cas_packs (name),
    off    bigint   NOT NULL,  -- of the stored bytes in the pack
    stored bigint   NOT NULL,  -- their length
    size   bigint   NOT NULL,  -- the content's length
    enc    smallint NOT NULL,  -- cas.Encoding: 0 raw, 1 zstd, 2 in a group
    grp    bytea,              -- EncGroup: the group's name,
    goff   bigint,             -- the chunk's offset in the group's content,
    glen   bigint,             -- and that content's length
    -- gc (DESIGN.md, "Replicas"): set when no version uses the chunk; answered as missing
    -- from then on, revived by a commit that uses it, deleted by a gc after the grace.
    condemned_at timestamptz
);
CREATE INDEX cas_chunks_pack ON cas_chunks (pack);
CREATE INDEX cas_chunks_condemned ON cas_chunks (condemned_at) WHERE condemned_at IS NOT NULL;
