-- The ledger (ledger/postgres.go): the same records as the pebble backend's keys.
-- Events: seq, the blake3 hash of the body, and the canonical JSON body, byte for byte.
CREATE TABLE ledger_events (
    seq  bigint PRIMARY KEY,
    hash bytea  NOT NULL,
    body bytea  NOT NULL
);
-- The head: one row, locked by every append (SELECT ... FOR UPDATE), which serialises the
-- appends of every replica.
CREATE TABLE ledger_head (
    one  boolean PRIMARY KEY DEFAULT true CHECK (one),
    seq  bigint  NOT NULL,
    hash bytea   NOT NULL
);
INSERT INTO ledger_head (seq, hash) VALUES (0, ''::bytea);
-- Projections: the pebble backend's projection keys (ledger/keys.go) and values, so that
-- one apply code writes both and `ledger verify` compares them with a replay.
CREATE TABLE ledger_projections (
    k bytea PRIMARY KEY,
    v bytea NOT NULL
);
