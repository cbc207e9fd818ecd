-- motomind 0033 down: every marked vehicle advances on its own again.
DROP FUNCTION advance_metrics(integer);
ALTER FUNCTION advance_vehicle_metrics(integer) RENAME TO advance_metrics;
COMMENT ON FUNCTION advance_metrics(integer) IS NULL;
DROP FUNCTION advance_tenant_metrics(integer);
