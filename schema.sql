-- canvasflow schema, version 6.
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

-- Version 4: teams. A project has members with a role (one owner; the owner_id
-- of every existing project becomes its owner member), invitation links (only
-- a SHA-256 of the token is stored), and jobs remember who started them.
DO $$ BEGIN
    -- should match Role in common/protocol/entities.py
    CREATE TYPE member_role AS ENUM ('owner', 'editor', 'viewer');
EXCEPTION WHEN duplicate_object THEN NULL; END $$;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM schema_version WHERE version = 4) THEN
        CREATE TABLE IF NOT EXISTS project_members (
            project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
            user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            role member_role NOT NULL,
            added_at timestamptz NOT NULL DEFAULT now(),
            -- the seq of the change that added the member: a resume from before it
            -- gets a snapshot, never a replay of events they were not there for
            added_seq bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (project_id, user_id)
        );
        -- "my projects", shared ones included
        CREATE INDEX IF NOT EXISTS project_members_user_idx ON project_members (user_id);
        -- one owner per project, whatever races
        CREATE UNIQUE INDEX IF NOT EXISTS project_members_one_owner
            ON project_members (project_id) WHERE role = 'owner';
        INSERT INTO project_members (project_id, user_id, role, added_at)
            SELECT id, owner_id, 'owner', created_at FROM projects
            ON CONFLICT DO NOTHING;

        -- every new project has its owner as a member, however it is inserted
        CREATE OR REPLACE FUNCTION projects_owner_member() RETURNS trigger
        LANGUAGE plpgsql AS $fn$
        BEGIN
            INSERT INTO project_members (project_id, user_id, role, added_at)
                VALUES (NEW.id, NEW.owner_id, 'owner', NEW.created_at)
                ON CONFLICT DO NOTHING;
            RETURN NEW;
        END
        $fn$;
        CREATE TRIGGER projects_owner_member AFTER INSERT ON projects
            FOR EACH ROW EXECUTE FUNCTION projects_owner_member();

        CREATE TABLE IF NOT EXISTS project_invites (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
            -- sha256 of the token; the token itself is only ever in the link
            token_hash bytea NOT NULL UNIQUE,
            role member_role NOT NULL CHECK (role <> 'owner'),
            created_by uuid REFERENCES users (id) ON DELETE SET NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL,
            accepted_by uuid REFERENCES users (id) ON DELETE SET NULL,
            accepted_at timestamptz,
            revoked_at timestamptz
        );
        CREATE INDEX IF NOT EXISTS project_invites_project_idx
            ON project_invites (project_id, created_at);

        ALTER TABLE jobs ADD COLUMN IF NOT EXISTS created_by uuid
            REFERENCES users (id) ON DELETE SET NULL;
        INSERT INTO schema_version (version) VALUES (4);
    END IF;
END
$$;

-- Version 5: takes, typed input ports, image-generation nodes.
-- Every output of a job is a take of its node; a node shows its active take.
-- Connections end at a named input port of their target (common/protocol/ports.py).
-- should match NodeType in common/protocol/entities.py. IF NOT EXISTS makes it
-- idempotent without a guard; the new value is not used in this transaction (Postgres
-- allows that only after commit)
ALTER TYPE node_type ADD VALUE IF NOT EXISTS 'image_gen';

CREATE TABLE IF NOT EXISTS takes (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id uuid NOT NULL,
    node_id uuid NOT NULL,
    -- the job that made it; a migrated take may have none
    job_id uuid REFERENCES jobs (id) ON DELETE SET NULL,
    -- its place among its job's outputs
    idx integer NOT NULL DEFAULT 0,
    media_key text NOT NULL,
    mime_type text NOT NULL,
    params jsonb NOT NULL DEFAULT '{}',
    seed bigint,
    -- who pressed Generate (the job's submitter, recorded at submit)
    created_by uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- the seq of the change that created it: newest first is version DESC, idx
    version bigint NOT NULL DEFAULT 0,
    FOREIGN KEY (project_id, node_id) REFERENCES nodes (project_id, id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS takes_node_idx ON takes (node_id, version DESC, idx);
CREATE INDEX IF NOT EXISTS takes_project_idx ON takes (project_id);

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM schema_version WHERE version = 5) THEN
        ALTER TABLE nodes ADD COLUMN IF NOT EXISTS active_take_id uuid
            REFERENCES takes (id) ON DELETE SET NULL;
        ALTER TABLE connections ADD COLUMN IF NOT EXISTS target_port text;
        -- existing links get the port they always meant: the prompt, the first frame,
        -- the clip to extend; a link that fits no port never fed anything and goes
        UPDATE connections c SET target_port = CASE s.type
                WHEN 'prompt' THEN 'prompt' WHEN 'image' THEN 'first_frame'
                WHEN 'video' THEN 'extend' END
            FROM nodes s, nodes t
            WHERE s.id = c.source_id AND t.id = c.target_id AND t.type = 'video';
        DELETE FROM connections WHERE target_port IS NULL;
        ALTER TABLE connections ALTER COLUMN target_port SET NOT NULL;
        -- a completed video node keeps its video as its one take, made by its latest
        -- job that stored that key
        INSERT INTO takes (project_id, node_id, job_id, idx, media_key, mime_type, params,
                           seed, created_at, version)
        SELECT n.project_id, n.id, j.id, 0, n.data->>'video_key', 'video/mp4',
               COALESCE(j.params, '{}'::jsonb)
                   || jsonb_build_object('duration', (j.result->>'duration')::int),
               (j.params->>'seed')::bigint, COALESCE(j.updated_at, n.updated_at), n.version
        FROM nodes n
        LEFT JOIN LATERAL (
            SELECT * FROM jobs WHERE node_id = n.id AND status = 'completed'
                AND result->>'video_key' = n.data->>'video_key'
            ORDER BY created_at DESC LIMIT 1
        ) j ON true
        WHERE n.type = 'video' AND n.data ? 'video_key';
        UPDATE nodes n SET active_take_id = t.id FROM takes t
            WHERE t.node_id = n.id AND n.active_take_id IS NULL;
        -- nodes and connections gained fields: clients resuming from before resync
        DELETE FROM events;
        INSERT INTO schema_version (version) VALUES (5);
    END IF;
END
$$;

-- Version 6: money and time. Each job records the cost it reserved and what it
-- finally cost; a user's budget per period is one row of `budgets` that a submit
-- locks (spent + reserved never above the limit, checked in the UPDATE that
-- reserves); `budget_ledger` holds one reservation and at most one closing
-- (settle or release) per job, so no retry or takeover can close it twice.
-- `job_durations` keeps the measured run time of each kind of job (provider,
-- model, mode, resolution, duration) for queue ETAs and estimated progress.
-- `idempotency_keys` maps a user's Idempotency-Key to the job it created.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM schema_version WHERE version = 6) THEN
        -- money in micro-units of the currency (common/prices.py)
        ALTER TABLE jobs ADD COLUMN IF NOT EXISTS reserved_cost bigint;
        ALTER TABLE jobs ADD COLUMN IF NOT EXISTS final_cost bigint;
        -- the kind of job its duration is measured as (db/estimates.py duration_key)
        ALTER TABLE jobs ADD COLUMN IF NOT EXISTS duration_key text;
        -- when a worker first started it; completed - started is its measured duration
        ALTER TABLE jobs ADD COLUMN IF NOT EXISTS started_at timestamptz;
        -- progress is canvasflow's estimate, not the provider's (Veo reports none)
        ALTER TABLE jobs ADD COLUMN IF NOT EXISTS progress_estimated boolean NOT NULL
            DEFAULT false;
        -- queue positions: pending jobs in submit order
        CREATE INDEX IF NOT EXISTS jobs_pending_order_idx ON jobs (created_at, id)
            WHERE status = 'pending';
        CREATE TABLE IF NOT EXISTS budgets (
            user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            -- the start of the period (UTC day, ISO week or month) the row counts
            period_start timestamptz NOT NULL,
            spent bigint NOT NULL DEFAULT 0 CHECK (spent >= 0),
            reserved bigint NOT NULL DEFAULT 0 CHECK (reserved >= 0),
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (user_id, period_start)
        );
        CREATE TABLE IF NOT EXISTS budget_ledger (
            job_id uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            -- 'reserve' at submit; 'close' at the job's terminal transition
            entry text NOT NULL CHECK (entry IN ('reserve', 'close')),
            -- reserve | settle | release
            kind text NOT NULL CHECK (kind IN ('reserve', 'settle', 'release')),
            user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            period_start timestamptz NOT NULL,
            amount bigint NOT NULL CHECK (amount >= 0),
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (job_id, entry)
        );
        CREATE TABLE IF NOT EXISTS job_durations (
            key text PRIMARY KEY,
            samples integer NOT NULL DEFAULT 0,
            mean_s double precision NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE IF NOT EXISTS idempotency_keys (
            user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            key text NOT NULL,
            -- sha256 of the route and the decoded body: another body is a reuse
            request_hash text NOT NULL,
            job_id uuid REFERENCES jobs (id) ON DELETE CASCADE,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (user_id, key)
        );
        -- a job deleted while its reservation is open (its node or project was deleted,
        -- cascading) gives the reservation back: nothing else would ever close it
        CREATE OR REPLACE FUNCTION release_deleted_job() RETURNS trigger AS $f$
        BEGIN
            UPDATE budgets b SET reserved = b.reserved - r.amount, updated_at = now()
            FROM budget_ledger r
            WHERE r.job_id = OLD.id AND r.entry = 'reserve'
                AND b.user_id = r.user_id AND b.period_start = r.period_start
                AND NOT EXISTS (SELECT 1 FROM budget_ledger c
                                WHERE c.job_id = OLD.id AND c.entry = 'close');
            RETURN OLD;
        END
        $f$ LANGUAGE plpgsql;
        DROP TRIGGER IF EXISTS jobs_release_on_delete ON jobs;
        CREATE TRIGGER jobs_release_on_delete BEFORE DELETE ON jobs
            FOR EACH ROW EXECUTE FUNCTION release_deleted_job();
        INSERT INTO schema_version (version) VALUES (6);
    END IF;
END
$$;
