-- A server's users, token hashes and project members (ops/auth_pg.go), and the chunks each
-- user has sent and not yet committed (ops/access.go): what every replica must see.
CREATE TABLE auth_users (
    name  text    PRIMARY KEY,
    admin boolean NOT NULL
);
CREATE TABLE auth_tokens (
    hash     bytea PRIMARY KEY,  -- blake3 of the token; the token itself is never kept
    username text  NOT NULL REFERENCES auth_users (name) ON DELETE CASCADE
);
CREATE TABLE auth_projects (
    name    text        PRIMARY KEY,
    id      integer     NOT NULL UNIQUE,
    created timestamptz NOT NULL
);
CREATE TABLE auth_members (
    project  text NOT NULL REFERENCES auth_projects (name) ON DELETE CASCADE,
    username text NOT NULL REFERENCES auth_users (name) ON DELETE CASCADE,
    PRIMARY KEY (project, username)
);
-- Bumped by every change: replicas reload the tables when it moved.
CREATE TABLE auth_version (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    n   bigint  NOT NULL
);
INSERT INTO auth_version (n) VALUES (0);
CREATE TABLE server_uploads (
    username text  NOT NULL,
    hash     bytea NOT NULL,
    PRIMARY KEY (username, hash)
);
CREATE INDEX server_uploads_hash ON server_uploads (hash);
