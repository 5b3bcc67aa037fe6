-- The schedules of `dsfiles serve --database-url`, shared by every replica (see
-- docs/http-api.md, "Schedules"). `record` is the API's schedule (`GET /v1/schedules/{name}`);
-- the other columns copy what replicas coordinate on, written with it in every change.
CREATE TABLE dsfiles_schedules (
    name        text        PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    enabled     boolean     NOT NULL,
    -- A tick is fired by the replica that locks the row while this is past, and moves it in
    -- the transaction that inserts the run's job: one run per tick across replicas.
    next_due_at timestamptz NOT NULL,
    -- The job of the latest run (a `dsfiles_jobs.id`; kept when the job is pruned).
    last_job    text,
    -- That job's state as last accounted (its end is counted once, on the change).
    last_state  text,
    record      jsonb       NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX dsfiles_schedules_due ON dsfiles_schedules (next_due_at) WHERE enabled;
