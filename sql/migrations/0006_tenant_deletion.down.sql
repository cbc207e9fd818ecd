-- Reverts 0006: refuse_event_change() as 0003 made it (the body copied on
-- purpose: a migration file stands alone).
DROP FUNCTION purge_tenant(uuid);
DROP FUNCTION delete_tenant();
CREATE OR REPLACE FUNCTION refuse_event_change() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  IF TG_OP = 'DELETE' AND current_setting('motomind.moving_partition', true) = 'on' THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
    MESSAGE = format('vehicle events are immutable: %s is not allowed; record a correction instead', TG_OP),
    TABLE = TG_TABLE_NAME;
END
$fn$;
