-- motomind 0010: reminders that know what is due (issue #13).
--  * a reminder is due by date, by distance or whichever comes first, may
--    recur (every N months and/or every N distance units), and may be tied to
--    a service type or to an inspection/document kind;
--  * its occurrences are a chain the database rebuilds from what satisfies
--    them: effective maintenance events of its service type (or inspections
--    and documents of its kind), and completions entered by hand; a
--    back-dated, amended or voided event re-evaluates the chain;
--  * next_service and expires_on in events create (or move) reminders;
--  * status (overdue, due_soon, upcoming, snoozed) is computed when read
--    (reminders_due), from today in the vehicle's timezone, its current
--    mileage and its recent driving rate (kept per vehicle on its head);
--  * reminders entering due_soon or overdue produce one notification each
--    (an outbox claimed with SKIP LOCKED, acknowledged, retried).
-- New tables are protected by protect_tenant_table(), which derives what a
-- table gets (policies, per-vehicle write rules, stamp, audit, grants) from
-- its columns.

-- ---- a tenant table, protected from its columns -----------------------------

-- The writer policies of a table whose rows belong to a vehicle: owners, or
-- a manager who may write the vehicle (0005's rule for images and reminders).
CREATE FUNCTION apply_vehicle_write_policies(rel regclass) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
  app text := (SELECT value FROM settings WHERE key = 'app_role');
  rule text := '(tenant_id = (SELECT current_tenant_id()) AND ((SELECT current_tenant_role()) = ''owner'' '
               'OR vehicle_id = ANY ((SELECT writable_vehicle_ids())::uuid[])))';
BEGIN
  EXECUTE format('DROP POLICY IF EXISTS writer_insert ON %s', rel);
  EXECUTE format('DROP POLICY IF EXISTS writer_update ON %s', rel);
  EXECUTE format('CREATE POLICY writer_insert ON %s FOR INSERT TO %I WITH CHECK %s', rel, app, rule);
  EXECUTE format('CREATE POLICY writer_update ON %s FOR UPDATE TO %I USING (deleted_at IS NULL AND %s) WITH CHECK %s',
                 rel, app, rule, rule);
END
$fn$;

-- Everything a new tenant table needs, by kind ('mutable' or 'derived', as
-- apply_tenant_policies): its policies; for mutable tables the stamp and
-- audit triggers and write grants, per vehicle when rows carry a vehicle_id;
-- the live-vehicle read policy when they do.
CREATE FUNCTION protect_tenant_table(rel regclass, kind text) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
  app text := (SELECT value FROM settings WHERE key = 'app_role');
  per_vehicle boolean := EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = rel AND a.attname = 'vehicle_id'
                                                              AND NOT a.attisdropped);
BEGIN
  PERFORM apply_tenant_policies(rel, kind);
  IF kind = 'mutable' THEN
    IF per_vehicle THEN PERFORM apply_vehicle_write_policies(rel); END IF;
    EXECUTE format('CREATE TRIGGER stamp BEFORE INSERT OR UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION stamp_row()', rel);
    EXECUTE format('CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION audit_row()', rel);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON %s TO %I', rel, app);
  ELSE
    EXECUTE format('GRANT SELECT ON %s TO %I', rel, app);
  END IF;
  IF per_vehicle THEN PERFORM apply_live_vehicle_policy(rel); END IF;
END
$fn$;

-- ---- thresholds, definitions -----------------------------------------------

ALTER TABLE tenants
  ADD COLUMN due_soon_days integer NOT NULL DEFAULT 30
    CONSTRAINT tenants_due_soon_days_check CHECK (due_soon_days BETWEEN 0 AND 3650),
  ADD COLUMN due_soon_distance numeric(10, 1) NOT NULL DEFAULT 500
    CONSTRAINT tenants_due_soon_distance_check CHECK (due_soon_distance >= 0);
COMMENT ON COLUMN tenants.due_soon_distance IS 'in each vehicle''s odometer unit';

ALTER TABLE reminders DROP CONSTRAINT reminders_check1;
ALTER TABLE reminders RENAME CONSTRAINT reminders_check TO reminders_owner_check;
ALTER TABLE reminders RENAME CONSTRAINT reminders_check2 TO reminders_completed_check;
ALTER TABLE reminders
  ADD COLUMN first_due_on date,
  ADD COLUMN first_due_mileage numeric(10, 1) CONSTRAINT reminders_first_due_mileage_check CHECK (first_due_mileage >= 0),
  ADD COLUMN starts_on date,
  ADD COLUMN repeat_months integer CONSTRAINT reminders_repeat_months_check CHECK (repeat_months BETWEEN 1 AND 600),
  ADD COLUMN repeat_distance numeric(10, 1) CONSTRAINT reminders_repeat_distance_check CHECK (repeat_distance > 0),
  ADD COLUMN service_type text CONSTRAINT reminders_service_type_check CHECK (btrim(service_type) <> ''),
  ADD COLUMN expiry_of text CONSTRAINT reminders_expiry_of_check CHECK (expiry_of IN ('inspection', 'document')),
  ADD COLUMN expiry_kind text,
  ADD COLUMN due_soon_days integer CONSTRAINT reminders_due_soon_days_check CHECK (due_soon_days BETWEEN 0 AND 3650),
  ADD COLUMN due_soon_distance numeric(10, 1) CONSTRAINT reminders_due_soon_distance_check CHECK (due_soon_distance >= 0),
  ADD COLUMN snoozed_until date,
  ADD COLUMN snoozed_until_mileage numeric(10, 1),
  ADD COLUMN source text NOT NULL DEFAULT 'manual'
    CONSTRAINT reminders_source_check CHECK (source IN ('manual', 'next_service', 'expiry', 'import')),
  ADD COLUMN source_event_id uuid,
  ADD CONSTRAINT reminders_due_check CHECK (first_due_on IS NOT NULL OR first_due_mileage IS NOT NULL
                                            OR service_type IS NOT NULL OR expiry_of IS NOT NULL),
  ADD CONSTRAINT reminders_tied_check CHECK (service_type IS NULL OR expiry_of IS NULL),
  ADD CONSTRAINT reminders_vehicle_check CHECK (vehicle_id IS NOT NULL OR (service_type IS NULL AND expiry_of IS NULL
                                                AND first_due_mileage IS NULL AND repeat_distance IS NULL));
UPDATE reminders SET first_due_on = due_on, first_due_mileage = due_mileage;
COMMENT ON COLUMN reminders.due_on IS
  'the current occurrence''s due date (the chain''s; writing it reschedules a reminder with no completion yet)';
COMMENT ON COLUMN reminders.due_mileage IS 'the current occurrence''s due mileage, in the vehicle''s unit';
COMMENT ON COLUMN reminders.starts_on IS
  'events dated before it do not complete it (default: the day it was made, when it has a first due); completions by hand always count';
COMMENT ON COLUMN reminders.service_type IS 'maintenance events of this service_type complete it (case-insensitive)';
COMMENT ON COLUMN reminders.expiry_of IS 'inspection or document events of expiry_kind with expires_on renew it';
CREATE INDEX reminders_tied_idx ON reminders (tenant_id, vehicle_id)
  WHERE deleted_at IS NULL AND (service_type IS NOT NULL OR expiry_of IS NOT NULL);

-- The audit columns (0001's temporary audit_columns is gone): as the
-- catalog has them on garages, every mutable table's from 0001.
DO $do$
DECLARE a record;
BEGIN
  CREATE TEMP TABLE audit_columns () ON COMMIT DROP;
  FOR a IN
    SELECT x.attname, format_type(x.atttypid, x.atttypmod) AS type, x.attnotnull, pg_get_expr(d.adbin, d.adrelid) AS def
      FROM pg_attribute x LEFT JOIN pg_attrdef d ON d.adrelid = x.attrelid AND d.adnum = x.attnum
     WHERE x.attrelid = 'garages'::regclass AND x.attname ~ '^(created|updated|deleted)_(at|by)$'
     ORDER BY x.attnum
  LOOP
    EXECUTE format('ALTER TABLE audit_columns ADD COLUMN %I %s %s %s', a.attname, a.type,
                   CASE WHEN a.attnotnull THEN 'NOT NULL' ELSE '' END, coalesce('DEFAULT ' || a.def, ''));
  END LOOP;
END
$do$;

-- Completions entered by hand ("done", without an event). Soft-deleting one
-- undoes it.
CREATE TABLE reminder_completions (
  tenant_id     uuid NOT NULL,
  id            uuid NOT NULL DEFAULT gen_random_uuid(),
  reminder_id   uuid NOT NULL,
  vehicle_id    uuid,
  completed_on  date NOT NULL,
  mileage       numeric(10, 1) CONSTRAINT reminder_completions_mileage_check CHECK (mileage >= 0),
  notes         text,
  LIKE audit_columns INCLUDING DEFAULTS,
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, reminder_id) REFERENCES reminders (tenant_id, id) ON DELETE CASCADE,
  FOREIGN KEY (tenant_id, vehicle_id) REFERENCES vehicles (tenant_id, id)
);
CREATE INDEX reminder_completions_reminder_idx ON reminder_completions (tenant_id, reminder_id) WHERE deleted_at IS NULL;
CREATE INDEX reminder_completions_updated_idx ON reminder_completions (tenant_id, updated_at);
CREATE INDEX reminder_completions_deleted_idx ON reminder_completions (tenant_id, deleted_at) WHERE deleted_at IS NOT NULL;

-- A completion belongs to its reminder's vehicle (the write rules are the
-- vehicle's), whatever the writer says.
CREATE FUNCTION reminder_completion_vehicle() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
  SELECT r.vehicle_id INTO NEW.vehicle_id FROM reminders r WHERE r.tenant_id = NEW.tenant_id AND r.id = NEW.reminder_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation', COLUMN = 'reminder_id',
      MESSAGE = format('reminder_id: no reminder %s in this tenant', NEW.reminder_id);
  END IF;
  RETURN NEW;
END
$fn$;
CREATE TRIGGER a_vehicle BEFORE INSERT OR UPDATE OF reminder_id, vehicle_id ON reminder_completions
  FOR EACH ROW EXECUTE FUNCTION reminder_completion_vehicle();

-- The chain: every occurrence of a reminder, completed (by an event or by
-- hand) or open (the last one, when something is due). Rebuilt by
-- rebuild_reminder(); read-only for applications.
CREATE TABLE reminder_occurrences (
  tenant_id           uuid NOT NULL,
  reminder_id         uuid NOT NULL,
  seq                 integer NOT NULL,
  vehicle_id          uuid,
  due_on              date,
  due_mileage         numeric(10, 1),
  completed_on        date,
  completed_mileage   numeric(10, 1),
  event_id            uuid,
  event_occurred_at   timestamptz,
  completion_id       uuid,
  PRIMARY KEY (tenant_id, reminder_id, seq),
  FOREIGN KEY (tenant_id, reminder_id) REFERENCES reminders (tenant_id, id) ON DELETE CASCADE,
  CONSTRAINT reminder_occurrences_by_check CHECK (event_id IS NULL OR completion_id IS NULL)
);
COMMENT ON TABLE reminder_occurrences IS
  'each occurrence of a reminder: completed by event_id or completion_id on completed_on, or open (completed_on NULL)';

-- The odometer as the due list needs it, kept on each vehicle's head.
ALTER TABLE vehicle_event_heads
  ADD COLUMN mileage numeric(10, 1),
  ADD COLUMN mileage_at timestamptz,
  ADD COLUMN distance_per_day numeric;
COMMENT ON COLUMN vehicle_event_heads.distance_per_day IS
  'recent driving rate: distance over the readings of the 90 days before the latest (the whole history when those span under 14 days); NULL with fewer than two readings a day apart';

-- A vehicle's latest effective reading and driving rate.
CREATE FUNCTION vehicle_odometer(p_tenant uuid, p_vehicle uuid,
  OUT mileage numeric, OUT mileage_at timestamptz, OUT distance_per_day numeric)
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
  WITH last AS (
    SELECT e.mileage, e.occurred_at FROM vehicle_events_effective e
     WHERE e.tenant_id = p_tenant AND e.vehicle_id = p_vehicle AND e.mileage IS NOT NULL
     ORDER BY e.occurred_at DESC, e.mileage DESC LIMIT 1),
  recent AS (
    SELECT e.mileage, e.occurred_at FROM vehicle_events_effective e, last
     WHERE e.tenant_id = p_tenant AND e.vehicle_id = p_vehicle AND e.mileage IS NOT NULL
       AND e.occurred_at >= last.occurred_at - interval '90 days'
     ORDER BY e.occurred_at, e.mileage LIMIT 1),
  first AS (
    SELECT e.mileage, e.occurred_at FROM vehicle_events_effective e
     WHERE e.tenant_id = p_tenant AND e.vehicle_id = p_vehicle AND e.mileage IS NOT NULL
     ORDER BY e.occurred_at, e.mileage LIMIT 1),
  base AS (
    SELECT CASE WHEN last.occurred_at - recent.occurred_at >= interval '14 days' THEN recent.mileage ELSE first.mileage END AS mileage,
           CASE WHEN last.occurred_at - recent.occurred_at >= interval '14 days' THEN recent.occurred_at ELSE first.occurred_at END AS at
      FROM last, recent, first)
  SELECT last.mileage, last.occurred_at,
         CASE WHEN last.occurred_at - base.at >= interval '1 day'
              THEN (last.mileage - base.mileage) / (extract(epoch FROM last.occurred_at - base.at) / 86400) END
    FROM last LEFT JOIN base ON true
$$;

-- ---- the chain ---------------------------------------------------------------

-- Rebuilds one reminder's occurrences from what satisfies it, oldest first:
-- each completion closes the open occurrence; the next is due at the
-- completing event's next_service (or expires_on), else a recurrence from
-- the completion's date and mileage, else nothing (a one-off is completed).
-- Sets the reminder's current due and status (a dismissed one stays so).
CREATE FUNCTION rebuild_reminder(p_tenant uuid, p_id uuid) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT SET motomind.maintenance = 'on' AS $fn$
DECLARE
  r reminders;
  tz text;
  c record;
  cur_on date;
  cur_mi numeric;
  n integer := 0;
  done_at timestamptz;
BEGIN
  SELECT * INTO r FROM reminders WHERE tenant_id = p_tenant AND id = p_id FOR UPDATE;
  IF NOT FOUND THEN RETURN; END IF;
  tz := coalesce((SELECT v.timezone FROM vehicles v WHERE v.tenant_id = p_tenant AND v.id = r.vehicle_id), 'UTC');
  DELETE FROM reminder_occurrences WHERE tenant_id = p_tenant AND reminder_id = p_id;
  cur_on := r.first_due_on;
  cur_mi := r.first_due_mileage;
  FOR c IN
    WITH done AS (
      SELECT e.id AS event_id, e.occurred_at AS event_at, NULL::uuid AS completion_id,
             (e.occurred_at AT TIME ZONE tz)::date AS done_on, e.occurred_at AS done_at, e.mileage,
             CASE WHEN e.type = 'maintenance' THEN (e.payload #>> '{next_service,due_on}')::date
                  ELSE (e.payload ->> 'expires_on')::date END AS next_on,
             (e.payload #>> '{next_service,mileage}')::numeric AS next_mileage, e.created_at AS entered_at
        FROM vehicle_events_effective e
       WHERE e.tenant_id = p_tenant AND e.vehicle_id = r.vehicle_id
         AND ((e.type = 'maintenance' AND lower(e.payload ->> 'service_type') = lower(r.service_type))
           OR (e.type = r.expiry_of AND e.payload ? 'expires_on'
               AND coalesce(e.payload ->> 'kind', '') = coalesce(r.expiry_kind, '')))
      UNION ALL
      SELECT NULL, NULL, k.id, k.completed_on, k.completed_on::timestamp AT TIME ZONE tz, k.mileage,
             NULL, NULL, k.created_at
        FROM reminder_completions k
       WHERE k.tenant_id = p_tenant AND k.reminder_id = p_id AND k.deleted_at IS NULL)
    SELECT d.*, coalesce(d.mileage, (
             SELECT m.mileage FROM vehicle_events_effective m
              WHERE m.tenant_id = p_tenant AND m.vehicle_id = r.vehicle_id AND m.mileage IS NOT NULL
                AND m.occurred_at <= d.done_at + CASE WHEN d.event_id IS NULL THEN interval '1 day' ELSE interval '0' END
              ORDER BY m.occurred_at DESC, m.mileage DESC LIMIT 1)) AS done_mileage
      FROM done d
     WHERE r.starts_on IS NULL OR d.event_id IS NULL OR d.done_on >= r.starts_on
     ORDER BY d.done_on, d.done_at, d.entered_at
  LOOP
    IF cur_on IS NOT NULL OR cur_mi IS NOT NULL THEN
      n := n + 1;
      INSERT INTO reminder_occurrences (tenant_id, reminder_id, seq, vehicle_id, due_on, due_mileage, completed_on,
                                        completed_mileage, event_id, event_occurred_at, completion_id)
      VALUES (p_tenant, p_id, n, r.vehicle_id, cur_on, cur_mi, c.done_on, c.done_mileage, c.event_id, c.event_at,
              c.completion_id);
      done_at := c.done_at;
    END IF;
    IF c.next_on IS NOT NULL OR c.next_mileage IS NOT NULL THEN
      cur_on := c.next_on;
      cur_mi := c.next_mileage;
    ELSIF r.repeat_months IS NOT NULL OR r.repeat_distance IS NOT NULL THEN
      cur_on := (c.done_on + make_interval(months => r.repeat_months))::date;
      cur_mi := coalesce(c.done_mileage, 0) + r.repeat_distance;
    ELSE
      cur_on := NULL;
      cur_mi := NULL;
    END IF;
  END LOOP;
  IF cur_on IS NOT NULL OR cur_mi IS NOT NULL THEN
    INSERT INTO reminder_occurrences (tenant_id, reminder_id, seq, vehicle_id, due_on, due_mileage)
    VALUES (p_tenant, p_id, n + 1, r.vehicle_id, cur_on, cur_mi);
    done_at := NULL;
  END IF;
  PERFORM set_config('motomind.reminder_chain', 'on', true);
  UPDATE reminders SET due_on = cur_on, due_mileage = cur_mi,
         status = CASE WHEN r.status = 'dismissed' THEN 'dismissed' WHEN done_at IS NOT NULL THEN 'completed' ELSE 'active' END,
         completed_at = CASE WHEN r.status <> 'dismissed' THEN done_at END
   WHERE tenant_id = p_tenant AND id = p_id
     AND (due_on, due_mileage, status, completed_at) IS DISTINCT FROM
         (cur_on, cur_mi, CASE WHEN r.status = 'dismissed' THEN 'dismissed' WHEN done_at IS NOT NULL THEN 'completed' ELSE 'active' END,
          CASE WHEN r.status <> 'dismissed' THEN done_at END);
  PERFORM set_config('motomind.reminder_chain', 'off', true);
END
$fn$;

-- A reminder's definition as written: due_on/due_mileage given on insert are
-- its first occurrence; changed later (with no completion yet) they
-- reschedule it. starts_on defaults to the day it is made when it has a
-- first due (history before it does not complete it).
CREATE FUNCTION reminder_definition() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
  IF current_setting('motomind.reminder_chain', true) = 'on' THEN RETURN NEW; END IF;
  IF TG_OP = 'INSERT' THEN
    NEW.first_due_on := coalesce(NEW.first_due_on, NEW.due_on);
    NEW.first_due_mileage := coalesce(NEW.first_due_mileage, NEW.due_mileage);
    IF NEW.starts_on IS NULL AND (NEW.first_due_on IS NOT NULL OR NEW.first_due_mileage IS NOT NULL) THEN
      NEW.starts_on := (now() AT TIME ZONE coalesce(
        (SELECT v.timezone FROM vehicles v WHERE v.tenant_id = NEW.tenant_id AND v.id = NEW.vehicle_id), 'UTC'))::date;
    END IF;
  ELSIF (NEW.due_on, NEW.due_mileage) IS DISTINCT FROM (OLD.due_on, OLD.due_mileage)
    AND (NEW.first_due_on, NEW.first_due_mileage) IS NOT DISTINCT FROM (OLD.first_due_on, OLD.first_due_mileage) THEN
    IF EXISTS (SELECT 1 FROM reminder_occurrences o WHERE o.tenant_id = NEW.tenant_id AND o.reminder_id = NEW.id
                                                      AND o.completed_on IS NOT NULL) THEN
      RAISE EXCEPTION USING ERRCODE = 'check_violation', TABLE = 'reminders', COLUMN = 'due_on',
        MESSAGE = 'due_on: this reminder has completed occurrences; snooze the current one or change first_due_on';
    END IF;
    NEW.first_due_on := NEW.due_on;
    NEW.first_due_mileage := NEW.due_mileage;
  END IF;
  RETURN NEW;
END
$fn$;
CREATE TRIGGER a_definition BEFORE INSERT OR UPDATE ON reminders
  FOR EACH ROW EXECUTE FUNCTION reminder_definition();

-- After a reminder is written: its chain, when its definition changed (its
-- notifications follow from the statement triggers).
CREATE FUNCTION reminder_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT SET motomind.maintenance = 'on' AS $fn$
BEGIN
  IF current_setting('motomind.reminder_chain', true) IS DISTINCT FROM 'on'
     AND (TG_OP = 'INSERT' OR (OLD.first_due_on, OLD.first_due_mileage, OLD.starts_on, OLD.repeat_months,
                               OLD.repeat_distance, OLD.service_type, OLD.expiry_of, OLD.expiry_kind, OLD.vehicle_id)
                              IS DISTINCT FROM
                              (NEW.first_due_on, NEW.first_due_mileage, NEW.starts_on, NEW.repeat_months,
                               NEW.repeat_distance, NEW.service_type, NEW.expiry_of, NEW.expiry_kind, NEW.vehicle_id)) THEN
    PERFORM rebuild_reminder(NEW.tenant_id, NEW.id);
  END IF;
  RETURN NULL;
END
$fn$;

-- A completion written or undone: its reminder's chain (whose update of the
-- reminder writes its notifications).
CREATE FUNCTION reminder_completion_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT SET motomind.maintenance = 'on' AS $fn$
BEGIN
  IF TG_OP <> 'INSERT' THEN PERFORM rebuild_reminder(OLD.tenant_id, OLD.reminder_id); END IF;
  IF TG_OP <> 'DELETE' THEN PERFORM rebuild_reminder(NEW.tenant_id, NEW.reminder_id); END IF;
  RETURN NULL;
END
$fn$;

-- ---- what is due ---------------------------------------------------------------

-- Each live, active reminder with something due: how far off it is, by days
-- and by distance, a projected date for a distance from the vehicle's
-- driving rate (from its latest reading), and its status. The effective due
-- date is the earlier of the due date and the projected one; urgency orders
-- overdue, due soon, upcoming, snoozed.
CREATE VIEW reminders_due WITH (security_invoker = true) AS
SELECT r.tenant_id, r.id AS reminder_id, r.vehicle_id, r.garage_id, v.group_id, r.title, r.service_type,
       r.expiry_of, r.expiry_kind, r.source, r.due_on, r.due_mileage, v.odometer_unit AS unit,
       h.mileage AS current_mileage, d.today, r.due_on - d.today AS days_left,
       r.due_mileage - h.mileage AS distance_left, p.projected_on,
       least(r.due_on, p.projected_on) AS effective_due_on, s.status,
       CASE s.status WHEN 'overdue' THEN 1 WHEN 'due_soon' THEN 2 WHEN 'upcoming' THEN 3 ELSE 4 END AS urgency,
       r.repeat_months, r.repeat_distance, r.snoozed_until, r.snoozed_until_mileage
  FROM reminders r
  JOIN tenants tn ON tn.id = r.tenant_id
  LEFT JOIN vehicles v ON v.tenant_id = r.tenant_id AND v.id = r.vehicle_id
  LEFT JOIN vehicle_event_heads h ON h.tenant_id = r.tenant_id AND h.vehicle_id = r.vehicle_id
  CROSS JOIN LATERAL (SELECT (now() AT TIME ZONE coalesce(v.timezone, 'UTC'))::date AS today) d
  CROSS JOIN LATERAL (
    SELECT CASE WHEN r.due_mileage IS NOT NULL AND h.distance_per_day > 0
                THEN (h.mileage_at AT TIME ZONE coalesce(v.timezone, 'UTC'))::date
                     + ceil(greatest(r.due_mileage - h.mileage, 0) / h.distance_per_day)::integer END AS projected_on) p
  CROSS JOIN LATERAL (
    SELECT CASE
      WHEN r.snoozed_until > d.today OR r.snoozed_until_mileage > coalesce(h.mileage, 0) THEN 'snoozed'
      WHEN r.due_on < d.today OR r.due_mileage < h.mileage THEN 'overdue'
      WHEN r.due_on - d.today <= coalesce(r.due_soon_days, tn.due_soon_days)
        OR r.due_mileage - h.mileage <= coalesce(r.due_soon_distance, tn.due_soon_distance)
        OR p.projected_on - d.today <= coalesce(r.due_soon_days, tn.due_soon_days) THEN 'due_soon'
      ELSE 'upcoming' END AS status) s
 WHERE r.status = 'active' AND r.deleted_at IS NULL AND (r.due_on IS NOT NULL OR r.due_mileage IS NOT NULL)
   AND (r.vehicle_id IS NULL OR v.deleted_at IS NULL);
COMMENT ON VIEW reminders_due IS
  'active reminders with status overdue, due_soon, upcoming or snoozed; order by urgency, effective_due_on, distance_left';

-- ---- notifications (an outbox) ---------------------------------------------

CREATE TABLE notifications (
  tenant_id      uuid NOT NULL REFERENCES tenants (id),
  id             bigint GENERATED ALWAYS AS IDENTITY,
  vehicle_id     uuid,
  reminder_id    uuid,
  kind           text NOT NULL CONSTRAINT notifications_kind_check CHECK (kind IN ('due_soon', 'overdue')),
  due_on         date,
  due_mileage    numeric(10, 1),
  payload        jsonb NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
  attempts       integer NOT NULL DEFAULT 0,
  claimed_by     text,
  claimed_until  timestamptz,
  next_attempt_at timestamptz,
  delivered_at   timestamptz,
  failed_at      timestamptz,
  last_error     text,
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, reminder_id) REFERENCES reminders (tenant_id, id) ON DELETE CASCADE,
  CONSTRAINT notifications_once UNIQUE NULLS NOT DISTINCT (tenant_id, reminder_id, kind, due_on, due_mileage)
);
COMMENT ON TABLE notifications IS
  'one row per reminder transition into due_soon or overdue (per occurrence), delivered once by a consumer';
CREATE INDEX notifications_pending_idx ON notifications (id) WHERE delivered_at IS NULL AND failed_at IS NULL;

-- What a notification says, for each reminder now due soon or overdue.
CREATE VIEW reminder_notices WITH (security_invoker = true) AS
SELECT d.tenant_id, d.vehicle_id, d.reminder_id, d.status AS kind, d.due_on, d.due_mileage,
       jsonb_build_object('kind', d.status, 'reminder_id', d.reminder_id, 'vehicle_id', d.vehicle_id,
                          'title', d.title, 'due_on', d.due_on, 'due_mileage', d.due_mileage, 'unit', d.unit,
                          'current_mileage', d.current_mileage, 'days_left', d.days_left,
                          'distance_left', d.distance_left, 'projected_on', d.projected_on) AS payload
  FROM reminders_due d
 WHERE d.status IN ('due_soon', 'overdue');

-- Wakes consumers (LISTEN motomind_notifications) when n notifications
-- were written.
CREATE FUNCTION wake_consumers(n bigint) RETURNS bigint
LANGUAGE plpgsql AS $fn$
BEGIN
  IF n > 0 THEN PERFORM pg_notify('motomind_notifications', current_schema()); END IF;
  RETURN n;
END
$fn$;

-- Notifications for every reminder now due soon or overdue that has none
-- for that transition yet (maintain(): date-driven transitions).
CREATE FUNCTION emit_reminder_notifications() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT SET motomind.maintenance = 'on' AS $fn$
DECLARE
  n bigint;
BEGIN
  INSERT INTO notifications (tenant_id, vehicle_id, reminder_id, kind, due_on, due_mileage, payload)
  SELECT * FROM reminder_notices ORDER BY tenant_id, reminder_id
  ON CONFLICT ON CONSTRAINT notifications_once DO NOTHING;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN wake_consumers(n);
END
$fn$;

-- The same for the reminders a statement wrote: one statement, each row
-- looked up by its primary key (which keeps its index plan even while a bulk
-- insert has left the table's statistics behind).
CREATE FUNCTION reminders_written() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT SET motomind.maintenance = 'on' AS $fn$
DECLARE
  n bigint;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM written) THEN RETURN NULL; END IF; -- (an UPDATE that matched nothing)
  INSERT INTO notifications (tenant_id, vehicle_id, reminder_id, kind, due_on, due_mileage, payload)
  SELECT x.* FROM written w CROSS JOIN LATERAL (
    SELECT * FROM reminder_notices n WHERE n.tenant_id = w.tenant_id AND n.reminder_id = w.id) x
   ORDER BY x.tenant_id, x.reminder_id
  ON CONFLICT ON CONSTRAINT notifications_once DO NOTHING;
  GET DIAGNOSTICS n = ROW_COUNT;
  PERFORM wake_consumers(n);
  RETURN NULL;
END
$fn$;
CREATE TRIGGER reminders_notify_insert AFTER INSERT ON reminders REFERENCING NEW TABLE AS written
  FOR EACH STATEMENT EXECUTE FUNCTION reminders_written();
CREATE TRIGGER reminders_notify_update AFTER UPDATE ON reminders REFERENCING NEW TABLE AS written
  FOR EACH STATEMENT EXECUTE FUNCTION reminders_written();

CREATE TRIGGER reminders_chain AFTER INSERT OR UPDATE ON reminders
  FOR EACH ROW EXECUTE FUNCTION reminder_changed();
CREATE TRIGGER reminders_chain AFTER INSERT OR UPDATE OR DELETE ON reminder_completions
  FOR EACH ROW EXECUTE FUNCTION reminder_completion_changed();

-- Claims up to max_rows pending notifications for lease (a consumer that
-- crashes loses its claim when the lease ends; the row is claimed again).
-- The owner role's: consumers serve every tenant.
CREATE FUNCTION claim_notifications(consumer text, max_rows integer DEFAULT 100, lease interval DEFAULT '5 minutes')
RETURNS SETOF notifications
LANGUAGE sql SET search_path FROM CURRENT SET motomind.maintenance = 'on' AS $$
  UPDATE notifications n SET claimed_by = consumer, claimed_until = clock_timestamp() + lease, attempts = n.attempts + 1
   WHERE (n.tenant_id, n.id) IN (
     SELECT p.tenant_id, p.id FROM notifications p
      WHERE p.delivered_at IS NULL AND p.failed_at IS NULL
        AND (p.claimed_until IS NULL OR p.claimed_until < clock_timestamp())
        AND (p.next_attempt_at IS NULL OR p.next_attempt_at <= clock_timestamp())
      ORDER BY p.id LIMIT max_rows FOR UPDATE SKIP LOCKED)
  RETURNING n.*
$$;

-- Marks a claimed notification delivered; false when the claim was lost
-- (expired and taken by another consumer, or already delivered).
CREATE FUNCTION ack_notification(p_tenant uuid, p_id bigint, consumer text) RETURNS boolean
LANGUAGE sql SET search_path FROM CURRENT SET motomind.maintenance = 'on' AS $$
  WITH done AS (
    UPDATE notifications SET delivered_at = clock_timestamp(), claimed_until = NULL, last_error = NULL
     WHERE tenant_id = p_tenant AND id = p_id AND claimed_by = consumer AND delivered_at IS NULL
    RETURNING 1)
  SELECT EXISTS (SELECT 1 FROM done)
$$;

-- Records a failed delivery: retried after retry_in, given up (failed_at)
-- after max_attempts.
CREATE FUNCTION fail_notification(p_tenant uuid, p_id bigint, consumer text, error text,
                                  retry_in interval DEFAULT '1 minute', max_attempts integer DEFAULT 10) RETURNS boolean
LANGUAGE sql SET search_path FROM CURRENT SET motomind.maintenance = 'on' AS $$
  WITH failed AS (
    UPDATE notifications SET last_error = error, claimed_until = NULL,
           next_attempt_at = clock_timestamp() + retry_in,
           failed_at = CASE WHEN attempts >= max_attempts THEN clock_timestamp() END
     WHERE tenant_id = p_tenant AND id = p_id AND claimed_by = consumer AND delivered_at IS NULL
    RETURNING 1)
  SELECT EXISTS (SELECT 1 FROM failed)
$$;

-- Per-tenant secrets signing what consumers deliver (webhook HMAC). The
-- owner role's alone.
CREATE TABLE tenant_secrets (
  tenant_id  uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
  webhook_secret text NOT NULL DEFAULT encode(sha256((gen_random_uuid()::text || gen_random_uuid()::text)::bytea), 'hex'),
  created_at timestamptz NOT NULL DEFAULT now()
);

-- ---- events drive reminders ---------------------------------------------------

-- The AFTER INSERT statement trigger of vehicle_events and its partitions,
-- after check_new_events (trigger names fire in order): the odometer of
-- vehicles with new readings or corrections; reminders created from
-- next_service and expires_on; the chains of the touched vehicles' tied
-- reminders; the notifications of the touched vehicles' reminders (a new
-- reading can make a distance due).
CREATE FUNCTION events_drive_reminders() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT SET motomind.maintenance = 'on' AS $fn$
DECLARE
  r record;
  n bigint;
BEGIN
  UPDATE vehicle_event_heads h SET mileage = o.mileage, mileage_at = o.mileage_at, distance_per_day = o.distance_per_day
    FROM (SELECT DISTINCT tenant_id, vehicle_id FROM new_events WHERE mileage IS NOT NULL OR corrects_id IS NOT NULL) t
    CROSS JOIN LATERAL vehicle_odometer(t.tenant_id, t.vehicle_id) o
   WHERE h.tenant_id = t.tenant_id AND h.vehicle_id = t.vehicle_id;

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
   WHERE n.correction IS DISTINCT FROM 'void'
     AND ((n.type = 'maintenance' AND n.payload ? 'next_service') OR (n.type IN ('inspection', 'document') AND n.payload ? 'expires_on'))
     AND NOT EXISTS (
       SELECT 1 FROM reminders x
        WHERE x.tenant_id = n.tenant_id AND x.vehicle_id = n.vehicle_id AND x.deleted_at IS NULL AND x.status <> 'dismissed'
          AND CASE WHEN n.type = 'maintenance' THEN lower(x.service_type) = lower(k.tie)
                   ELSE x.expiry_of = n.type AND coalesce(x.expiry_kind, '') = k.tie END)
   ORDER BY n.tenant_id, n.vehicle_id, n.type, k.tie, n.occurred_at;

  FOR r IN
    SELECT x.tenant_id, x.id FROM reminders x
     WHERE (x.tenant_id, x.vehicle_id) IN (SELECT DISTINCT tenant_id, vehicle_id FROM new_events
                                            WHERE type IN ('maintenance', 'inspection', 'document') OR corrects_id IS NOT NULL)
       AND x.deleted_at IS NULL AND (x.service_type IS NOT NULL OR x.expiry_of IS NOT NULL)
     ORDER BY x.tenant_id, x.id
  LOOP
    PERFORM rebuild_reminder(r.tenant_id, r.id);
  END LOOP;
  INSERT INTO notifications (tenant_id, vehicle_id, reminder_id, kind, due_on, due_mileage, payload)
  SELECT x.* FROM (SELECT DISTINCT tenant_id, vehicle_id FROM new_events) t CROSS JOIN LATERAL (
    SELECT * FROM reminder_notices n WHERE n.tenant_id = t.tenant_id AND n.vehicle_id = t.vehicle_id) x
   ORDER BY x.tenant_id, x.reminder_id
  ON CONFLICT ON CONSTRAINT notifications_once DO NOTHING;
  GET DIAGNOSTICS n = ROW_COUNT;
  PERFORM wake_consumers(n);
  RETURN NULL;
END
$fn$;

-- The trigger on the parent and on each partition (new partitions get it
-- from protect_event_partition; the rest of its body as in 0009).
CREATE FUNCTION add_reminder_trigger(rel regclass) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = rel AND tgname = 'vehicle_events_reminders') THEN
    EXECUTE format('CREATE TRIGGER vehicle_events_reminders AFTER INSERT ON %s REFERENCING NEW TABLE AS new_events '
                   'FOR EACH STATEMENT EXECUTE FUNCTION events_drive_reminders()', rel);
  END IF;
END
$fn$;
SELECT add_reminder_trigger(c.oid::regclass) FROM pg_class c
 WHERE c.oid = 'vehicle_events'::regclass
    OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'vehicle_events'::regclass);

CREATE OR REPLACE FUNCTION protect_event_partition(rel regclass) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_policy WHERE polrelid = rel) THEN
    PERFORM apply_tenant_policies(rel, 'events');
    PERFORM apply_event_write_policy(rel);
    PERFORM apply_live_vehicle_policy(rel);
  END IF;
  PERFORM add_reminder_trigger(rel);
END
$fn$;

-- Existing vehicles' odometers and existing reminders' chains.
UPDATE vehicle_event_heads h SET mileage = o.mileage, mileage_at = o.mileage_at, distance_per_day = o.distance_per_day
  FROM vehicle_event_heads x CROSS JOIN LATERAL vehicle_odometer(x.tenant_id, x.vehicle_id) o
 WHERE h.tenant_id = x.tenant_id AND h.vehicle_id = x.vehicle_id;
SELECT rebuild_reminder(tenant_id, id) FROM reminders;

-- The latest effective reading has one definition, vehicle_odometer(): the
-- view reads what it keeps on the heads (as 0003's, without a lookup per vehicle).
CREATE OR REPLACE VIEW vehicle_current_mileage WITH (security_invoker = true) AS
SELECT h.tenant_id, h.vehicle_id, h.mileage, h.mileage_at AS occurred_at, v.odometer_unit
  FROM vehicle_event_heads h JOIN vehicles v ON v.tenant_id = h.tenant_id AND v.id = h.vehicle_id
 WHERE h.mileage IS NOT NULL;

-- ---- protection, upkeep --------------------------------------------------------

SELECT protect_tenant_table('reminder_completions', 'mutable');
SELECT protect_tenant_table('reminder_occurrences', 'derived');
SELECT protect_tenant_table('notifications', 'derived');
ALTER TABLE tenant_secrets ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_secrets FORCE ROW LEVEL SECURITY;
DO $do$
BEGIN
  EXECUTE format('CREATE POLICY maintenance ON tenant_secrets TO %I USING (in_maintenance()) WITH CHECK (in_maintenance())',
                 (SELECT value FROM settings WHERE key = 'owner_role'));
  EXECUTE format('GRANT SELECT ON reminders_due TO %I', (SELECT value FROM settings WHERE key = 'app_role'));
END
$do$;

-- maintain() as in 0008, plus the notifications of reminders that became
-- due because a day passed.
CREATE OR REPLACE FUNCTION maintain(ahead integer DEFAULT 2, max_age interval DEFAULT '5 minutes') RETURNS jsonb
LANGUAGE plpgsql SET search_path FROM CURRENT SET motomind.maintenance = 'on' AS $fn$
DECLARE
  keep text := (SELECT value FROM settings WHERE key = 'retention_months');
  out jsonb := '{}';
  failures_before bigint := (SELECT coalesce(max(id), 0) FROM maintenance_failures);
  msg text;
  state text;
BEGIN
  IF NOT pg_try_advisory_xact_lock(hashtext(current_schema() || '.maintain')) THEN
    RETURN jsonb_build_object('skipped', true);
  END IF;
  out := out || jsonb_build_object('partitions_created', (SELECT coalesce(jsonb_agg(p), '[]') FROM ensure_partitions(ahead) p));
  IF keep <> '' THEN
    BEGIN
      out := out || jsonb_build_object('archived', (SELECT coalesce(jsonb_agg(p), '[]') FROM archive_partitions() p));
    EXCEPTION WHEN OTHERS THEN
      GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, state = RETURNED_SQLSTATE;
      PERFORM record_failure('retention', NULL, msg, state);
    END;
  END IF;
  BEGIN
    out := out || jsonb_build_object('feed', refresh_feed(max_age));
  EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, state = RETURNED_SQLSTATE;
    PERFORM record_failure('feed', 'timeline_feed', msg, state);
  END;
  out := out || jsonb_build_object('vehicles_advanced', advance_metrics());
  BEGIN
    out := out || jsonb_build_object('notifications', emit_reminder_notifications());
  EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, state = RETURNED_SQLSTATE;
    PERFORM record_failure('notifications', 'reminders', msg, state);
  END;
  RETURN out || jsonb_build_object('failures', (SELECT count(*) FROM maintenance_failures WHERE id > failures_before));
END
$fn$;

REVOKE EXECUTE ON FUNCTION apply_vehicle_write_policies(regclass), protect_tenant_table(regclass, text),
  vehicle_odometer(uuid, uuid), rebuild_reminder(uuid, uuid), emit_reminder_notifications(),
  claim_notifications(text, integer, interval), ack_notification(uuid, bigint, text),
  fail_notification(uuid, bigint, text, text, interval, integer), add_reminder_trigger(regclass) FROM PUBLIC;
