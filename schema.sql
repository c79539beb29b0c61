-- canvasflow schema, version 3.
-- Applied idempotently at start by db/migrate.py under an advisory lock, so
-- any number of processes may start at once. A later change adds a block
-- guarded by the version in schema_version and bumps it.

CREATE TABLE IF NOT EXISTS schema_version (
    version integer NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

DO $$ BEGIN
    -- should match NodeType in db/nodes.py
    CREATE TYPE node_type AS ENUM ('prompt', 'image', 'video');
EXCEPTION WHEN duplicate_object THEN NULL; END $$;

DO $$ BEGIN
    -- should match NodeStatus in db/nodes.py
    CREATE TYPE node_status AS ENUM ('idle', 'processing', 'completed', 'failed');
EXCEPTION WHEN duplicate_object THEN NULL; END $$;

DO $$ BEGIN
    -- should match JobStatus in db/jobs.py
    CREATE TYPE job_status AS ENUM ('pending', 'processing', 'completed', 'failed', 'cancelled');
EXCEPTION WHEN duplicate_object THEN NULL; END $$;

CREATE TABLE IF NOT EXISTS users (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email text NOT NULL,
    password_hash text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS users_email_key ON users (lower(email));

CREATE TABLE IF NOT EXISTS sessions (
    -- sha256 of the token; the token itself is only ever held by the client
    token_hash bytea PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_user_idx ON sessions (user_id);

CREATE TABLE IF NOT EXISTS projects (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name text NOT NULL,
    -- the per-project change counter: one per change, strictly increasing
    seq bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS projects_owner_idx ON projects (owner_id, created_at);

CREATE TABLE IF NOT EXISTS nodes (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    type node_type NOT NULL,
    x double precision NOT NULL DEFAULT 0,
    y double precision NOT NULL DEFAULT 0,
    data jsonb NOT NULL DEFAULT '{}',
    status node_status NOT NULL DEFAULT 'idle',
    error_message text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- target of the connections' composite keys, which keep both ends in one project
    UNIQUE (project_id, id)
);

CREATE TABLE IF NOT EXISTS connections (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id uuid NOT NULL,
    source_id uuid NOT NULL,
    target_id uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (project_id, source_id) REFERENCES nodes (project_id, id) ON DELETE CASCADE,
    FOREIGN KEY (project_id, target_id) REFERENCES nodes (project_id, id) ON DELETE CASCADE,
    CONSTRAINT connections_no_self_loop CHECK (source_id <> target_id),
    CONSTRAINT connections_unique UNIQUE (source_id, target_id)
);
CREATE INDEX IF NOT EXISTS connections_project_idx ON connections (project_id);
CREATE INDEX IF NOT EXISTS connections_target_idx ON connections (target_id);

CREATE TABLE IF NOT EXISTS jobs (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    node_id uuid NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    type text NOT NULL,
    status job_status NOT NULL DEFAULT 'pending',
    params jsonb NOT NULL DEFAULT '{}',
    result jsonb,
    error text,
    progress real NOT NULL DEFAULT 0,
    provider_operation text,
    attempts integer NOT NULL DEFAULT 0,
    deadline timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- "latest job of a node"
CREATE INDEX IF NOT EXISTS jobs_node_latest_idx ON jobs (node_id, created_at DESC);
-- at most one live job per node: the 409 on double submit holds under races
CREATE UNIQUE INDEX IF NOT EXISTS jobs_one_live_per_node
    ON jobs (node_id) WHERE status IN ('pending', 'processing');
-- the sweeper's scan
CREATE INDEX IF NOT EXISTS jobs_live_idx ON jobs (status, updated_at)
    WHERE status IN ('pending', 'processing');

-- The change log: every seq'd event, written in the transaction that made the
-- change. Lets a client resume with `since` by replay, and lets the hub fill
-- any gap in the Redis stream from Postgres.
CREATE TABLE IF NOT EXISTS events (
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    seq bigint NOT NULL,
    kind text NOT NULL,
    -- json, not jsonb: the text exactly as published, so an event replayed from
    -- the log reaches a client byte for byte as the live one did
    data json NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, seq)
);
CREATE INDEX IF NOT EXISTS events_created_idx ON events (created_at);

CREATE TABLE IF NOT EXISTS uploads (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    key text NOT NULL UNIQUE,
    mime_type text NOT NULL,
    width integer NOT NULL,
    height integer NOT NULL,
    size_bytes bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS uploads_project_idx ON uploads (project_id);

INSERT INTO schema_version (version)
SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM schema_version WHERE version = 1);

-- Version 2: events.data keeps the published text (jsonb reordered the keys,
-- so a replayed event differed from the live one it repeats).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM schema_version WHERE version = 2) THEN
        ALTER TABLE events ALTER COLUMN data TYPE json USING data::json;
        INSERT INTO schema_version (version) VALUES (2);
    END IF;
END
$$;

-- Version 3: nodes and connections carry `version`, the seq of the change that
-- last wrote them (a client tells which of two copies is newer; a write may name
-- the version it was made against). Event data now has the shapes of
-- common/protocol (jobs as JobStatusResponse): the log of older shapes is
-- emptied, and clients resuming from before it get a snapshot.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM schema_version WHERE version = 3) THEN
        ALTER TABLE nodes ADD COLUMN IF NOT EXISTS version bigint NOT NULL DEFAULT 0;
        ALTER TABLE connections ADD COLUMN IF NOT EXISTS version bigint NOT NULL DEFAULT 0;
        DELETE FROM events;
        INSERT INTO schema_version (version) VALUES (3);
    END IF;
END
$$;
