-- metrictui 003: the fleet. Where a check ran (checks.location, checks_v.location as the last
-- column), and the latest heartbeat per agent (agents, agents_v).

ALTER TABLE checks ADD COLUMN IF NOT EXISTS location text;

CREATE OR REPLACE VIEW checks_v AS
SELECT ts, agent, target, url, ok, status_code, reason,
       dns_ms, connect_ms, tls_ms, ttfb_ms, total_ms, content_match, cert_expires_at, location
FROM checks;

-- One row per agent: its latest heartbeat (an older one, replayed from a spool, never wins).
-- The thresholds come with the heartbeat, so each agent's own settings decide its state.
CREATE TABLE IF NOT EXISTS agents (
    agent             text        PRIMARY KEY,
    host              text        NOT NULL,
    location          text        NOT NULL,
    version           text        NOT NULL,
    role              text        NOT NULL,
    last_seen         timestamptz NOT NULL,
    targets_assigned  integer     NOT NULL,
    idle              boolean     NOT NULL,
    spool_depth       bigint      NOT NULL,
    errors_total      bigint      NOT NULL,
    send_errors_total bigint      NOT NULL,
    last_check_at     timestamptz,
    interval_s        real        NOT NULL,
    stale_after_s     real        NOT NULL,
    offline_after_s   real        NOT NULL
);

CREATE OR REPLACE VIEW agents_v AS
SELECT agent, host, location, version, role, last_seen, targets_assigned, spool_depth,
       errors_total,
       CASE
           WHEN now() - last_seen > make_interval(secs => offline_after_s) THEN 'offline'
           WHEN now() - last_seen > make_interval(secs => stale_after_s) THEN 'stale'
           ELSE 'live'
       END AS state
FROM agents;
