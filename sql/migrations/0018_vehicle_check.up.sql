-- motomind 0018: an event's vehicle is checked once per vehicle and
-- statement, not once per row (#17).
--  * the foreign key vehicle_events -> vehicles checked every row of a bulk
--    COPY or import with its own index probe and row lock (2.3 s of a
--    10.4 s COPY of 200,000 events); it is replaced by the heads: every
--    statement that writes events upserts the head of each vehicle it
--    touches (check_new_events), a new head checks its vehicle exists
--    (below) and the heads' own foreign key keeps a vehicle with events from
--    being deleted. Integrity is as strong for every writer: no event
--    without its vehicle, no vehicle deleted under its events;
--  * trigger_foreign_keys records such a reference, and foreign_keys reads
--    it beside the catalog's constraints, so what derives the tables'
--    order from their references (tenant_tables: purge, the isolation
--    matrix's rows) still sees it.

-- Every event's vehicle has a head (always so: heads came with events in
-- 0003; kept here as the invariant this migration rests on).
INSERT INTO vehicle_event_heads (tenant_id, vehicle_id, last_occurred_at)
SELECT tenant_id, vehicle_id, max(occurred_at) FROM vehicle_events GROUP BY tenant_id, vehicle_id
ON CONFLICT DO NOTHING;

ALTER TABLE vehicle_events DROP CONSTRAINT vehicle_events_tenant_id_vehicle_id_fkey;

-- A new head (a vehicle's first event) names a vehicle of the tenant.
-- Raised as the foreign key it replaces was, with the field and the reason.
CREATE FUNCTION check_head_vehicle() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM vehicles v WHERE v.tenant_id = NEW.tenant_id AND v.id = NEW.vehicle_id) THEN
    RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'vehicle_events_tenant_id_vehicle_id_fkey',
      TABLE = 'vehicle_events', COLUMN = 'vehicle_id',
      MESSAGE = format('vehicle_id: no vehicle %s in this tenant', NEW.vehicle_id);
  END IF;
  RETURN NEW;
END
$fn$;
CREATE TRIGGER vehicle_exists BEFORE INSERT ON vehicle_event_heads
  FOR EACH ROW EXECUTE FUNCTION check_head_vehicle();

CREATE TABLE trigger_foreign_keys (
  name           text PRIMARY KEY,
  rel            regclass NOT NULL,
  columns        text[] NOT NULL,
  target         regclass NOT NULL,
  target_columns text[] NOT NULL,
  checked_by     text NOT NULL
);
COMMENT ON TABLE trigger_foreign_keys IS
  'references enforced by triggers instead of a foreign key constraint (set-based, for bulk writes)';
INSERT INTO trigger_foreign_keys VALUES
  ('vehicle_events_tenant_id_vehicle_id_fkey', 'vehicle_events', '{tenant_id,vehicle_id}', 'vehicles', '{tenant_id,id}',
   'check_new_events upserts the head of each vehicle written, check_head_vehicle checks a new head''s vehicle, '
   'vehicle_event_heads_tenant_id_vehicle_id_fkey keeps the vehicle');

-- The schema's references: its foreign key constraints (partitions' copies
-- left out) and the ones its triggers enforce.
DO $do$
BEGIN
  EXECUTE format($f$
    CREATE VIEW foreign_keys AS
    SELECT k.conname::text AS name, k.conrelid::regclass AS rel,
           ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY u (n, i)
                   JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n ORDER BY u.i) AS columns,
           k.confrelid::regclass AS target,
           ARRAY(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY u (n, i)
                   JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n ORDER BY u.i) AS target_columns,
           'constraint'::text AS checked_by
      FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
     WHERE k.contype = 'f' AND k.conparentid = 0 AND c.relnamespace = %1$L::regnamespace
    UNION ALL
    SELECT name, rel, columns, target, target_columns, checked_by FROM trigger_foreign_keys$f$, current_schema());
END
$do$;
COMMENT ON VIEW foreign_keys IS
  'every reference between the schema''s tables: foreign key constraints and trigger_foreign_keys';

-- tenant_tables as in 0008, its order now from foreign_keys.
DO $do$
BEGIN
  EXECUTE format($f$
    CREATE OR REPLACE VIEW tenant_tables AS
    WITH RECURSIVE rels AS (
      SELECT c.oid AS rel, c.relname::text AS table_name FROM pg_class c
       WHERE c.relnamespace = %1$L::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
         AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id'
                                                    AND NOT a.attisdropped)),
    fk AS (
      SELECT DISTINCT k.rel::oid AS child, k.target::oid AS parent FROM foreign_keys k
       WHERE k.rel <> k.target AND k.rel IN (SELECT rel FROM rels) AND k.target IN (SELECT rel FROM rels)),
    walk (rel, depth) AS (
      SELECT rel, 0 FROM rels
      UNION ALL
      SELECT fk.child, w.depth + 1 FROM walk w JOIN fk ON fk.parent = w.rel WHERE w.depth < 64)
    SELECT r.table_name, r.rel::regclass AS rel, max(w.depth) AS depth,
           EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = r.rel AND a.attname = 'deleted_at'
                                                  AND NOT a.attisdropped) AS soft_delete
      FROM rels r JOIN walk w ON w.rel = r.rel
     GROUP BY r.table_name, r.rel$f$, current_schema());
END
$do$;
