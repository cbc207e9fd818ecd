-- Undoes 0018: the per-row foreign key again (tenant_tables as in 0008).
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
      SELECT DISTINCT k.conrelid AS child, k.confrelid AS parent FROM pg_constraint k
       WHERE k.contype = 'f' AND k.conrelid <> k.confrelid
         AND k.conrelid IN (SELECT rel FROM rels) AND k.confrelid IN (SELECT rel FROM rels)),
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
DROP VIEW foreign_keys;
DROP TABLE trigger_foreign_keys;
DROP TRIGGER vehicle_exists ON vehicle_event_heads;
DROP FUNCTION check_head_vehicle();
ALTER TABLE vehicle_events ADD FOREIGN KEY (tenant_id, vehicle_id) REFERENCES vehicles (tenant_id, id);
