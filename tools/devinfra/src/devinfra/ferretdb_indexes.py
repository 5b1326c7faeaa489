"""Index-backed FerretDB: GIN expression indexes on every collection table, custom plans.

FerretDB v1 pushes a top-level equality filter down to PostgreSQL as ``_jsonb->$1 @> $2``, which
its own btree indexes cannot serve: every find and every update by ``_id`` scans the table. A
GIN expression index (``jsonb_path_ops``) on ``_jsonb->'<field>'`` serves that shape, provided
the planner sees the field name, i.e. plans each execution (``plan_cache_mode =
force_custom_plan``; a generic plan of FerretDB's prepared statements cannot use it). An event
trigger in FerretDB's database adds these indexes, for each of :data:`FIELDS`, to every table
FerretDB creates. FerretDB's own code is unchanged.
"""

from __future__ import annotations

from devinfra.proc import ServerStartError

# Top-level fields the services filter on by equality (e.g. events by return_key, sync jobs and
# checkpoints by shop_id and status, a page of returns by its time bucket: contracts.read_model;
# the returns waiting on the seller by action_due: contracts.deadlines).
FIELDS = ("_id", "shop_id", "status", "return_key", "reason", "command_id",
          "page_day", "page_status_day", "page_hour", "page_status_hour", "action_due")
EVENT_TRIGGER = "devinfra_gin_indexes"
PLAN_CACHE_MODE = "force_custom_plan"

# Idempotent; run at every start. Also indexes tables created before (an earlier data dir).
INSTALL_SQL = """
CREATE OR REPLACE FUNCTION public.devinfra_gin_indexes(tbl regclass) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    fields CONSTANT text[] := ARRAY[{fields}];
    field text;
    suffix text;
    tbl_name text;
BEGIN
    SELECT c.relname INTO tbl_name FROM pg_class c WHERE c.oid = tbl;
    -- a collection's table is (_jsonb jsonb), capped ones with a record id; skip FerretDB's own
    IF tbl_name = '_ferretdb_database_metadata' OR NOT EXISTS (
        SELECT 1 FROM pg_attribute a
        WHERE a.attrelid = tbl AND a.attname = '_jsonb' AND a.atttypid = 'jsonb'::regtype
          AND NOT a.attisdropped
    ) THEN
        RETURN;
    END IF;
    FOREACH field IN ARRAY fields LOOP
        suffix := '_' || field || '_gin';  -- FerretDB's own index names end in _<hash>_idx
        EXECUTE format(
            'CREATE INDEX IF NOT EXISTS %I ON %s USING gin ((_jsonb -> %L) jsonb_path_ops)',
            left(tbl_name, 63 - length(suffix)) || suffix, tbl, field
        );
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION public.devinfra_gin_indexes_on_create_table() RETURNS event_trigger
LANGUAGE plpgsql AS $$
DECLARE
    created record;
BEGIN
    FOR created IN
        SELECT objid FROM pg_event_trigger_ddl_commands() WHERE object_type = 'table'
    LOOP
        PERFORM public.devinfra_gin_indexes(created.objid::regclass);
    END LOOP;
END
$$;

DROP EVENT TRIGGER IF EXISTS {trigger};
CREATE EVENT TRIGGER {trigger} ON ddl_command_end WHEN TAG IN ('CREATE TABLE')
    EXECUTE FUNCTION public.devinfra_gin_indexes_on_create_table();

SELECT public.devinfra_gin_indexes(c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'public');
""".format(fields=", ".join(f"'{field}'" for field in FIELDS), trigger=EVENT_TRIGGER)

CHECK_SQL = f"""
SELECT current_setting('plan_cache_mode'),
       EXISTS (SELECT 1 FROM pg_event_trigger
               WHERE evtname = '{EVENT_TRIGGER}' AND evtenabled <> 'D'
                 AND 'CREATE TABLE' = ANY (evttags))
"""


def check(result: str) -> None:
    """Fail with one line unless ``result`` (of :data:`CHECK_SQL`, psql ``-tA``) shows both
    the plan cache mode and the event trigger in place."""
    mode, trigger = result.strip().split("|")
    if mode != PLAN_CACHE_MODE:
        raise ServerStartError(
            f"FerretDB's PostgreSQL is not index-backed: plan_cache_mode is {mode}, "
            f"not {PLAN_CACHE_MODE}"
        )
    if trigger != "t":
        raise ServerStartError(
            f"FerretDB's PostgreSQL is not index-backed: event trigger {EVENT_TRIGGER} "
            "is missing or disabled"
        )
