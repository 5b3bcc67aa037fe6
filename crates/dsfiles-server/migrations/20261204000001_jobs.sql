-- The jobs of `dsfiles serve --database-url`, shared by every replica (see docs/http-api.md,
-- "Replicas and PostgreSQL"). `record` is the API's job record (`GET /v1/syncs/{id}`), the
-- other columns are what replicas coordinate on.
CREATE TABLE dsfiles_jobs (
    id               text        PRIMARY KEY,
    state            text        NOT NULL
                     CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    demarche         bigint      NOT NULL,
    dest             text        NOT NULL,
    created_at       timestamptz NOT NULL,
    -- The replica running the job (set when it is claimed, kept when it ends).
    runner           text,
    -- A running job whose lease is past belongs to nobody: any replica may claim it again.
    lease_expires_at timestamptz,
    -- Asked from any replica; the runner sees it when it renews its lease.
    cancel_requested boolean     NOT NULL DEFAULT false,
    record           jsonb       NOT NULL,
    -- What happened to the job, oldest first: [{"at", "event", "replica", "message"}].
    history          jsonb       NOT NULL DEFAULT '[]'::jsonb,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- One writer per manifest across replicas: at most one running job per démarche and
-- destination, and at most one waiting (webhook deliveries coalesce into it).
CREATE UNIQUE INDEX dsfiles_jobs_one_running ON dsfiles_jobs (demarche, dest)
    WHERE state = 'running';
CREATE UNIQUE INDEX dsfiles_jobs_one_queued ON dsfiles_jobs (demarche, dest)
    WHERE state = 'queued';
-- The claim loop's scan: queued jobs oldest first, running jobs by lease.
CREATE INDEX dsfiles_jobs_claimable ON dsfiles_jobs (created_at)
    WHERE state IN ('queued', 'running');
CREATE INDEX dsfiles_jobs_recent ON dsfiles_jobs (created_at DESC, id DESC);
