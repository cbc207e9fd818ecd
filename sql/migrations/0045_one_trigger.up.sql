-- motomind 0045: one statement trigger on the events: the reminders follow
-- a statement from the check's own pass (#17). events_drive_reminders, the
-- second AFTER INSERT trigger, read the statement's rows once more for its
-- three flags per vehicle (a scan of the spilled transition table and a
-- hash aggregate); the check's aggregate now takes them (whether a vehicle
-- has readings or corrections: its bounds; whether it touches the events
-- its tied reminders follow; whether a row may create a reminder) and runs
-- the reminders' statements after every rule has passed, in the order the
-- two triggers ran. track_functions at a million rows: the two triggers
-- 1.58 s, the one 1.40-1.42 s. New partitions get no reminders trigger.
SELECT edit_function('check_new_events()', ARRAY[
$e$  heads_last timestamptz[]; heads_dirty timestamptz[]; payload_refused boolean;
$e$,
$e$  heads_last timestamptz[]; heads_dirty timestamptz[]; payload_refused boolean;
  -- whether the statement touches events each vehicle's tied reminders
  -- follow, and whether a row of it may create a reminder (0045)
  heads_tied boolean[]; any_creates boolean; reminder record; notified bigint;
$e$,
$e$           coalesce(bool_or(refused), false)
      INTO heads_t, heads_v, heads_last, heads_dirty, heads_lo, heads_hi, heads_corrected, heads_step, payload_refused
$e$,
$e$           coalesce(bool_or(refused), false), array_agg(tied ORDER BY tenant_id, vehicle_id), bool_or(creates)
      INTO heads_t, heads_v, heads_last, heads_dirty, heads_lo, heads_hi, heads_corrected, heads_step, payload_refused,
           heads_tied, any_creates
$e$,
$e$                     FILTER (WHERE correction IS DISTINCT FROM 'void') AS refused
              FROM new_events GROUP BY tenant_id, vehicle_id) g;
$e$,
$e$                     FILTER (WHERE correction IS DISTINCT FROM 'void') AS refused,
                   bool_or(type IN ('maintenance', 'inspection', 'document') OR corrects_id IS NOT NULL) AS tied,
                   bool_or(creates_reminder(type, correction, payload)) AS creates
              FROM new_events GROUP BY tenant_id, vehicle_id) g;
$e$,
$e$           array_agg(corrected ORDER BY tenant_id, vehicle_id)
      INTO heads_t, heads_v, heads_last, heads_dirty, heads_lo, heads_hi, heads_corrected
$e$,
$e$           array_agg(corrected ORDER BY tenant_id, vehicle_id), array_agg(tied ORDER BY tenant_id, vehicle_id), bool_or(creates)
      INTO heads_t, heads_v, heads_last, heads_dirty, heads_lo, heads_hi, heads_corrected, heads_tied, any_creates
$e$,
$e$                   bool_or(corrects_id IS NOT NULL) AS corrected
              FROM new_events GROUP BY tenant_id, vehicle_id) g;
$e$,
$e$                   bool_or(corrects_id IS NOT NULL) AS corrected,
                   bool_or(type IN ('maintenance', 'inspection', 'document') OR corrects_id IS NOT NULL) AS tied,
                   bool_or(creates_reminder(type, correction, payload)) AS creates
              FROM new_events GROUP BY tenant_id, vehicle_id) g;
$e$,
$e$  RETURN NULL;
END$e$,
$e$  -- The reminders (events_drive_reminders before 0045): the odometer of
  -- vehicles with new readings or corrections; reminders created from
  -- next_service and expires_on; the chains of the touched vehicles' tied
  -- reminders; the notifications of the touched vehicles' reminders (a new
  -- reading can make a distance due).
  UPDATE vehicle_event_heads h SET mileage = o.mileage, mileage_at = o.mileage_at, distance_per_day = o.distance_per_day
    FROM unnest(heads_t, heads_v, heads_lo) t(tenant_id, vehicle_id, lo)
    CROSS JOIN LATERAL vehicle_odometer(t.tenant_id, t.vehicle_id) o
   WHERE t.lo IS NOT NULL AND h.tenant_id = t.tenant_id AND h.vehicle_id = t.vehicle_id;

  IF any_creates THEN
  INSERT INTO reminders (tenant_id, vehicle_id, title, service_type, expiry_of, expiry_kind, source, source_event_id,
                         due_soon_days)
  SELECT DISTINCT ON (n.tenant_id, n.vehicle_id, n.type, k.tie) n.tenant_id, n.vehicle_id, k.title,
         CASE WHEN n.type = 'maintenance' THEN k.tie END, CASE WHEN n.type <> 'maintenance' THEN n.type END,
         CASE WHEN n.type <> 'maintenance' THEN n.payload ->> 'kind' END,
         CASE WHEN n.type = 'maintenance' THEN 'next_service' ELSE 'expiry' END, n.id,
         CASE WHEN n.type <> 'maintenance' THEN 30 END
    FROM new_events n
    CROSS JOIN LATERAL (
      SELECT CASE WHEN n.type = 'maintenance' THEN n.payload ->> 'service_type' ELSE coalesce(n.payload ->> 'kind', '') END AS tie,
             CASE WHEN n.type = 'maintenance' THEN initcap(replace(n.payload ->> 'service_type', '_', ' '))
                  ELSE initcap(n.type) || coalesce(' (' || (n.payload ->> 'kind') || ')', '') || ' expires' END AS title) k
   WHERE creates_reminder(n.type, n.correction, n.payload)
     AND NOT EXISTS (
       SELECT 1 FROM reminders x
        WHERE x.tenant_id = n.tenant_id AND x.vehicle_id = n.vehicle_id AND x.deleted_at IS NULL AND x.status <> 'dismissed'
          AND CASE WHEN n.type = 'maintenance' THEN lower(x.service_type) = lower(k.tie)
                   ELSE x.expiry_of = n.type AND coalesce(x.expiry_kind, '') = k.tie END)
   ORDER BY n.tenant_id, n.vehicle_id, n.type, k.tie, n.occurred_at;
  END IF;

  FOR reminder IN
    SELECT x.tenant_id, x.id FROM reminders x
     WHERE (x.tenant_id, x.vehicle_id) IN (SELECT t, v FROM unnest(heads_t, heads_v, heads_tied) u(t, v, tied) WHERE tied)
       AND x.deleted_at IS NULL AND (x.service_type IS NOT NULL OR x.expiry_of IS NOT NULL)
     ORDER BY x.tenant_id, x.id
  LOOP
    PERFORM rebuild_reminder(reminder.tenant_id, reminder.id);
  END LOOP;
  INSERT INTO notifications (tenant_id, vehicle_id, reminder_id, kind, due_on, due_mileage, payload)
  SELECT x.* FROM unnest(heads_t, heads_v) t(tenant_id, vehicle_id) CROSS JOIN LATERAL (
    SELECT * FROM reminder_notices n WHERE n.tenant_id = t.tenant_id AND n.vehicle_id = t.vehicle_id) x
   ORDER BY x.tenant_id, x.reminder_id
  ON CONFLICT ON CONSTRAINT notifications_once DO NOTHING;
  GET DIAGNOSTICS notified = ROW_COUNT;
  PERFORM wake_consumers(notified);
  RETURN NULL;
END$e$], '0045');

DO $do$
DECLARE rel regclass;
BEGIN
  FOR rel IN SELECT tgrelid::regclass FROM pg_trigger
              WHERE tgname = 'vehicle_events_reminders' AND tgparentid = 0
                AND tgrelid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'vehicle_events'::regclass
                                UNION SELECT 'vehicle_events'::regclass) LOOP
    EXECUTE format('DROP TRIGGER vehicle_events_reminders ON %s', rel);
  END LOOP;
END
$do$;

SELECT edit_function('protect_event_partition(regclass)', ARRAY[
$e$  END IF;
  PERFORM add_reminder_trigger(rel);
END$e$,
$e$  END IF;
END$e$], '0045');
DROP FUNCTION add_reminder_trigger(regclass);
DROP FUNCTION events_drive_reminders();
