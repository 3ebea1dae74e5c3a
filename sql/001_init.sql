-- metrictui schema, version 1.
-- Applied by `metrictui migrate` inside one transaction, with search_path set to the configured
-- schema (default metrictui). Public, stable read interface: samples_v, checks_v, dead_letters.

-- One row per event ever accepted. The primary key makes every insert idempotent: a replayed
-- Kafka message or a re-sent spool record finds its event id here and is skipped, so each event
-- lands exactly once. Partitioned by observed_at like the data, so retention drops it too.
CREATE TABLE events (
    event_id    uuid        NOT NULL,
    observed_at timestamptz NOT NULL,
    kind        text        NOT NULL,
    agent       text        NOT NULL,
    inserted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, observed_at)
) PARTITION BY RANGE (observed_at);

-- A metric series is (agent, host, metric, labels, unit); samples refer to it by id, so the big
-- table stays narrow (ts, series_id, value).
CREATE TABLE series (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agent   text  NOT NULL,
    host    text  NOT NULL,
    metric  text  NOT NULL,
    labels  jsonb NOT NULL DEFAULT '{}'::jsonb,
    unit    text  NOT NULL DEFAULT '',
    UNIQUE (agent, host, metric, labels, unit)
);

CREATE TABLE samples (
    ts        timestamptz      NOT NULL,
    series_id bigint           NOT NULL,
    value     double precision NOT NULL
) PARTITION BY RANGE (ts);

CREATE TABLE checks (
    ts              timestamptz NOT NULL,
    event_id        uuid        NOT NULL,
    agent           text        NOT NULL,
    target          text        NOT NULL,
    url             text        NOT NULL,
    method          text        NOT NULL,
    ok              boolean     NOT NULL,
    status_code     integer,
    reason          text,
    error           text,
    dns_ms          real,
    connect_ms      real,
    tls_ms          real,
    ttfb_ms         real,
    total_ms        real,
    content_match   boolean,
    cert_expires_at timestamptz,
    resolved_ip     text
) PARTITION BY RANGE (ts);

-- Messages that could not be decoded or validated. (topic, partition, offset) is unique, so a
-- replay after a crash does not store the same bad message twice.
CREATE TABLE dead_letters (
    received_at timestamptz NOT NULL DEFAULT now(),
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    "offset"    bigint      NOT NULL,
    reason      text        NOT NULL,
    payload     bytea,
    PRIMARY KEY (topic, partition, "offset")
);

-- Daily partitions are created on demand by the sink (see engine/store.py); this index
-- template is inherited by every partition.
CREATE INDEX samples_series_ts ON samples (series_id, ts);
CREATE INDEX checks_target_ts ON checks (target, ts);

CREATE VIEW samples_v AS
SELECT s.ts, se.agent, se.host, se.metric, se.labels, s.value, se.unit
FROM samples s
JOIN series se ON se.id = s.series_id;

CREATE VIEW checks_v AS
SELECT ts, agent, target, url, ok, status_code, reason,
       dns_ms, connect_ms, tls_ms, ttfb_ms, total_ms, content_match, cert_expires_at
FROM checks;
