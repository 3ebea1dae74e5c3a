-- Least privilege: the sink may run under a role that can only SELECT and INSERT here.
-- Daily partitions are DDL, which only the owner of the partitioned tables may run, so the
-- sink asks this function for them: it belongs to the owner that applies the migrations and
-- runs with the owner's rights (SECURITY DEFINER). It can only create the daily partitions of
-- events, samples and checks in this schema: its search_path is pinned to this schema (where
-- the sink role has no CREATE) and pg_temp, and nobody but the owner may call it until the
-- operator grants EXECUTE (see README, "Least privilege").
DO $migration$
BEGIN
    EXECUTE format(
        'CREATE FUNCTION %I.ensure_day_partitions(days date[]) RETURNS void'
        ' LANGUAGE plpgsql SECURITY DEFINER SET search_path = %I, pg_temp AS %L',
        current_schema(), current_schema(), $body$
DECLARE
    d  date;
    t  text;
    lo timestamptz;
BEGIN
    -- The same lock the sink takes for its own DDL: concurrent sinks create each table once.
    PERFORM pg_advisory_xact_lock(1836348784);
    FOREACH d IN ARRAY days LOOP
        lo := d::timestamp AT TIME ZONE 'UTC';
        FOREACH t IN ARRAY ARRAY['events', 'samples', 'checks'] LOOP
            EXECUTE format(
                'CREATE TABLE IF NOT EXISTS %I.%I PARTITION OF %I.%I FOR VALUES FROM (%L) TO (%L)',
                current_schema(), t || '_' || to_char(d, 'YYYYMMDD'), current_schema(), t,
                lo, lo + interval '1 day');
        END LOOP;
    END LOOP;
END
$body$);
    EXECUTE format(
        'REVOKE ALL ON FUNCTION %I.ensure_day_partitions(date[]) FROM PUBLIC', current_schema());
END
$migration$;
