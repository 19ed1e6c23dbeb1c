-- The loop as a product (DESIGN.md §8): a policy per taxonomy says when to retrain,
-- how, when to promote and what round to compose next; each run of it is a cycle, a
-- row whose state the jobs of its steps advance, in the transaction that records each
-- job's success (cycles::advance).
CREATE TABLE loop_policies (
    taxonomy_id   BIGINT PRIMARY KEY REFERENCES taxonomies(id),
    enabled       BOOLEAN NOT NULL DEFAULT false,
    -- Retrain after this many new labels, and/or this many hours after the last cycle.
    every_labels  INTEGER CHECK (every_labels > 0),
    every_hours   REAL CHECK (every_hours > 0),
    -- auto: the fast profile, or full fine-tuning when a GPU worker is registered.
    profile       TEXT NOT NULL DEFAULT 'auto' CHECK (profile IN ('auto', 'fast', 'full')),
    -- auto: promote by the rule (promotion::judge); hold: every new version waits for a person.
    promote       TEXT NOT NULL DEFAULT 'auto' CHECK (promote IN ('auto', 'hold')),
    -- The micro F1 a new version must gain, and the most a keyword with enough test
    -- labels may lose.
    margin        REAL NOT NULL DEFAULT 0 CHECK (margin >= 0),
    max_drop      REAL NOT NULL DEFAULT 0.05 CHECK (max_drop >= 0),
    round_size    INTEGER NOT NULL DEFAULT 30 CHECK (round_size > 0),
    assist        TEXT NOT NULL DEFAULT 'shown' CHECK (assist IN ('off', 'shown', 'prefilled')),
    double_share  REAL NOT NULL DEFAULT 0.1 CHECK (double_share BETWEEN 0 AND 1),
    -- The next round is composed once the open rounds are this far done.
    mostly_done   REAL NOT NULL DEFAULT 0.8 CHECK (mostly_done BETWEEN 0 AND 1),
    updated_by    BIGINT REFERENCES users(id),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE loop_cycles (
    id              BIGSERIAL PRIMARY KEY,
    taxonomy_id     BIGINT NOT NULL REFERENCES taxonomies(id),
    -- labels (n new), schedule, manual, first start
    started_because TEXT NOT NULL,
    started_by      BIGINT REFERENCES users(id),
    started_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The labels it trains on: every annotation up to this id (its snapshot).
    snapshot_id     BIGINT NOT NULL REFERENCES label_snapshots(id),
    labels_through  BIGINT NOT NULL,
    labels          INTEGER NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('training', 'comparing', 'scoring', 'waiting_round',
                                                   'composing', 'done', 'failed')),
    train_job       BIGINT REFERENCES jobs(id),
    compare_job     BIGINT REFERENCES jobs(id),
    score_job       BIGINT REFERENCES jobs(id),
    compose_job     BIGINT REFERENCES jobs(id),
    version         TEXT,
    -- promoted | held, with why, and the two evaluations on the same test reviews.
    decision        TEXT CHECK (decision IN ('promoted', 'held')),
    decision_reason TEXT,
    comparison      JSONB,
    round_id        BIGINT REFERENCES rounds(id),
    -- Why a cycle ended without a round, or failed.
    note            TEXT,
    finished_at     TIMESTAMPTZ
);
-- One cycle at a time per taxonomy.
CREATE UNIQUE INDEX loop_cycles_one_open ON loop_cycles(taxonomy_id) WHERE state NOT IN ('done', 'failed');
CREATE INDEX loop_cycles_taxonomy_idx ON loop_cycles(taxonomy_id, id DESC);

-- Workers say who they are while they run: the loop trains fully on a GPU when one is
-- registered.
CREATE TABLE workers (
    id         TEXT PRIMARY KEY,
    kinds      TEXT[] NOT NULL,
    devices    TEXT[] NOT NULL,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen  TIMESTAMPTZ NOT NULL DEFAULT now()
);
