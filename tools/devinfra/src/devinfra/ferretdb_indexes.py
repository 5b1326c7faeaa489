"""Index-backed FerretDB: GIN expression indexes for the equality filters it pushes down, custom
plans, and none of the btree indexes its queries never use.

FerretDB v1 pushes a top-level equality filter down to PostgreSQL as ``_jsonb->$1 @> $2``, which
its own btree indexes cannot serve: every find and every update by ``_id`` scans the table. A
GIN expression index (``jsonb_path_ops``) on ``_jsonb->'<field>'`` serves that shape, provided
the planner sees the field name, i.e. plans each execution (``plan_cache_mode =
force_custom_plan``; a generic plan of FerretDB's prepared statements cannot use it).

Two event triggers in FerretDB's database translate, FerretDB's own code unchanged (a third
keeps the placeholders tidy, below):

- on ``CREATE TABLE`` (a new collection): a GIN index on ``_id``;
- on ``CREATE INDEX`` (the app's ``createIndexes``, which FerretDB turns into a btree expression
  index): a GIN index on each of the index's keys that is one of :data:`FIELDS` (the fields the
  services filter on by equality), and the btree is replaced by a placeholder of the same name.
  FerretDB's SQL never uses the btree (it pushes down equality only, and sorts only by
  ``$natural``), yet every write would pay for it: an update rewrites the whole ``_jsonb`` row,
  so it inserts into every index of the table. FerretDB's metadata and the name stay, so
  ``listIndexes``, a repeated ``createIndexes`` and ``dropIndexes`` behave as on MongoDB.
  FerretDB's unique indexes (``_id``) are kept: they enforce uniqueness and serve its
  ``UPDATE``/``DELETE ... WHERE _jsonb->'_id' = $1``.

The placeholder is an empty index (``WHERE false``) on :data:`NAMES_TABLE`, a table of no rows
in the same schema, not on the collection's table: an index name is unique in its schema, so
FerretDB's ``DROP INDEX`` finds it there, and the collection's table has only the indexes that
serve. Placeholders on the table itself cost every query and every write through FerretDB:
with plans made per execution, the planner opens and examines each index of the table (an
update by ``_id`` on the returns, with 13 of them: 0.16 ms planning against 0.09 without,
``python -m bench.store_profile --returns 2000 --events 20000 --run sm``). A placeholder's
comment names its collection's table (by oid); a third event trigger, on ``DROP TABLE``, drops
the placeholders of a dropped collection, so a collection created again under that name can
create its indexes again.

So each collection gets a GIN index for exactly the equality fields its declared MongoDB indexes
lead with or contain, and the same declaration serves MongoDB and FerretDB.
"""

from __future__ import annotations

from devinfra.proc import ServerStartError

# Top-level fields the services filter on by equality (e.g. events by return_key, sync jobs and
# checkpoints by shop_id and status, a page of returns by its time bucket: contracts.read_model;
# the returns waiting on the seller by action_due: contracts.deadlines). A key of a declared
# index that is not here (update_time, created_at, ...) is a sort or range key: FerretDB does
# not push those down, so an index on it would only cost.
FIELDS = ("shop_id", "status", "return_key", "reason", "command_id",
          "page_day", "page_status_day", "page_hour", "page_status_hour", "action_due")
TABLE_TRIGGER = "devinfra_gin_indexes"
INDEX_TRIGGER = "devinfra_gin_for_declared_indexes"
DROP_TRIGGER = "devinfra_drop_placeholders"
NAMES_TABLE = "_devinfra_index_names"
PLAN_CACHE_MODE = "force_custom_plan"

# Idempotent; run at every start. Also translates the indexes of an earlier data dir.
INSTALL_SQL = r"""
-- an earlier data dir's function, which gave every table a GIN index for every field
DROP FUNCTION IF EXISTS public.devinfra_gin_indexes(regclass);

CREATE OR REPLACE FUNCTION public.devinfra_is_collection(tbl regclass) RETURNS boolean
LANGUAGE sql STABLE AS $$
    -- a collection's table is (_jsonb jsonb), capped ones with a record id; not FerretDB's own
    SELECT c.relname <> '_ferretdb_database_metadata' AND EXISTS (
        SELECT 1 FROM pg_attribute a
        WHERE a.attrelid = tbl AND a.attname = '_jsonb' AND a.atttypid = 'jsonb'::regtype
          AND NOT a.attisdropped
    )
    FROM pg_class c WHERE c.oid = tbl
$$;

CREATE OR REPLACE FUNCTION public.devinfra_gin_index(tbl regclass, field text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    suffix CONSTANT text := '_' || field || '_gin';  -- FerretDB's own names end in _<hash>_idx
BEGIN
    EXECUTE format(
        'CREATE INDEX IF NOT EXISTS %I ON %s USING gin ((_jsonb -> %L) jsonb_path_ops) '
        'WITH (fastupdate = off)',
        left((SELECT relname FROM pg_class WHERE oid = tbl), 63 - length(suffix)) || suffix,
        tbl, field
    );
END
$$;

-- An index of a collection's table replaced by the empty index that keeps its name, on the
-- names table of the same schema (created on first use), its comment naming the table: a
-- declared btree, or a placeholder an earlier data dir kept on the table itself.
CREATE OR REPLACE FUNCTION public.devinfra_to_placeholder(idx regclass) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    tbl CONSTANT regclass := (SELECT indrelid FROM pg_index WHERE indexrelid = idx);
    idx_name CONSTANT name := (SELECT relname FROM pg_class WHERE oid = idx);
    schema CONSTANT name := (SELECT n.nspname FROM pg_class c
                             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = tbl);
BEGIN
    EXECUTE format('DROP INDEX %s', idx);
    EXECUTE format('CREATE TABLE IF NOT EXISTS %I.{names_table} (unused int)', schema);
    EXECUTE format('CREATE INDEX %I ON %I.{names_table} (unused) WHERE false', idx_name, schema);
    EXECUTE format('COMMENT ON INDEX %I.%I IS %L', schema, idx_name, tbl::oid::text);
END
$$;

-- A btree FerretDB made for a declared index: GIN for its equality keys instead.
CREATE OR REPLACE FUNCTION public.devinfra_translate_index(idx regclass) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    fields CONSTANT text[] := ARRAY[{fields}];
    tbl regclass;
    def text;
    field text;
BEGIN
    SELECT i.indrelid::regclass, pg_get_indexdef(i.indexrelid) INTO tbl, def
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
    WHERE i.indexrelid = idx AND am.amname = 'btree' AND NOT i.indisunique
      AND i.indpred IS NULL;
    IF tbl IS NULL OR NOT public.devinfra_is_collection(tbl) THEN
        RETURN;  -- a GIN index, a unique one, an empty placeholder, or not a collection's
    END IF;
    -- top-level keys only: a nested one reads ((_jsonb -> 'a'::text) -> 'b'::text)
    FOR field IN
        SELECT m[1] FROM regexp_matches(def, '\(\(_jsonb -> ''([^'']+)''::text\)\)', 'g') AS m
    LOOP
        IF field = ANY (fields) THEN
            PERFORM public.devinfra_gin_index(tbl, field);
        END IF;
    END LOOP;
    PERFORM public.devinfra_to_placeholder(idx);
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
        IF public.devinfra_is_collection(created.objid::regclass) THEN
            PERFORM public.devinfra_gin_index(created.objid::regclass, '_id');
        END IF;
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION public.devinfra_gin_for_declared_indexes() RETURNS event_trigger
LANGUAGE plpgsql AS $$
DECLARE
    created record;
BEGIN
    FOR created IN
        SELECT objid FROM pg_event_trigger_ddl_commands() WHERE object_type = 'index'
    LOOP
        PERFORM public.devinfra_translate_index(created.objid::regclass);
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION public.devinfra_drop_placeholders() RETURNS event_trigger
LANGUAGE plpgsql AS $$
DECLARE
    placeholder record;
BEGIN
    FOR placeholder IN
        SELECT format('%I.%I', n.nspname, c.relname) AS name
        FROM pg_event_trigger_dropped_objects() dropped
        JOIN pg_description d ON d.description = dropped.objid::text
             AND d.classoid = 'pg_class'::regclass AND d.objsubid = 0
        JOIN pg_class c ON c.oid = d.objoid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_index i ON i.indexrelid = c.oid
        WHERE dropped.object_type = 'table' AND n.nspname = dropped.schema_name
          AND i.indrelid = to_regclass(format('%I.{names_table}', n.nspname))
    LOOP
        EXECUTE 'DROP INDEX ' || placeholder.name;
    END LOOP;
END
$$;

DROP EVENT TRIGGER IF EXISTS {table_trigger};
CREATE EVENT TRIGGER {table_trigger} ON ddl_command_end WHEN TAG IN ('CREATE TABLE')
    EXECUTE FUNCTION public.devinfra_gin_indexes_on_create_table();
DROP EVENT TRIGGER IF EXISTS {index_trigger};
CREATE EVENT TRIGGER {index_trigger} ON ddl_command_end WHEN TAG IN ('CREATE INDEX')
    EXECUTE FUNCTION public.devinfra_gin_for_declared_indexes();
DROP EVENT TRIGGER IF EXISTS {drop_trigger};
CREATE EVENT TRIGGER {drop_trigger} ON sql_drop WHEN TAG IN ('DROP TABLE')
    EXECUTE FUNCTION public.devinfra_drop_placeholders();

-- the tables and indexes of an earlier data dir
SELECT public.devinfra_gin_index(c.oid, '_id')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'public')
  AND public.devinfra_is_collection(c.oid);
SELECT public.devinfra_translate_index(i.indexrelid)
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'public', 'pg_toast');
-- placeholders an earlier data dir kept on the collection's table itself
SELECT public.devinfra_to_placeholder(i.indexrelid)
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'public', 'pg_toast')
  AND pg_get_expr(i.indpred, i.indrelid) = 'false'
  AND public.devinfra_is_collection(i.indrelid);
""".format(fields=", ".join(f"'{field}'" for field in FIELDS), table_trigger=TABLE_TRIGGER,
           index_trigger=INDEX_TRIGGER, drop_trigger=DROP_TRIGGER, names_table=NAMES_TABLE)

CHECK_SQL = f"""
SELECT current_setting('plan_cache_mode'),
       (SELECT count(*) FROM pg_event_trigger
        WHERE (evtname, evttags) IN (('{TABLE_TRIGGER}', ARRAY['CREATE TABLE']),
                                     ('{INDEX_TRIGGER}', ARRAY['CREATE INDEX']),
                                     ('{DROP_TRIGGER}', ARRAY['DROP TABLE']))
          AND evtenabled <> 'D') = 3
"""


def check(result: str) -> None:
    """Fail with one line unless ``result`` (of :data:`CHECK_SQL`, psql ``-tA``) shows both
    the plan cache mode and the three event triggers in place."""
    mode, trigger = result.strip().split("|")
    if mode != PLAN_CACHE_MODE:
        raise ServerStartError(
            f"FerretDB's PostgreSQL is not index-backed: plan_cache_mode is {mode}, "
            f"not {PLAN_CACHE_MODE}"
        )
    if trigger != "t":
        raise ServerStartError(
            f"FerretDB's PostgreSQL is not index-backed: event trigger {TABLE_TRIGGER}, "
            f"{INDEX_TRIGGER} or {DROP_TRIGGER} is missing or disabled"
        )
