-- motomind 0001: the seven core tables of the original design, with its
-- defects fixed (see docs/design.md):
--  * keys are tenant-first: tenant_id leads every primary, unique and foreign
--    key between tenant tables (distributable by tenant, e.g. with Citus);
--  * vehicle_events is keyed (tenant_id, id, occurred_at), so other tables can
--    reference an event (they carry its occurred_at), instead of (id, date);
--  * one time type: occurred_at timestamptz; local dates come from the
--    vehicle's timezone;
--  * uniques (VIN, plate, garage name) are scoped to the tenant and ignore
--    soft-deleted rows.
-- Objects are created unqualified: the migrator sets search_path to the
-- target schema.

CREATE FUNCTION is_valid_timezone(tz text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT SET search_path = pg_catalog AS $$
BEGIN
  PERFORM now() AT TIME ZONE tz;
  RETURN true;
EXCEPTION WHEN invalid_parameter_value THEN
  RETURN false;
END $$;
COMMENT ON FUNCTION is_valid_timezone(text) IS
  'true when tz is a time zone name PostgreSQL knows (IANA, e.g. Europe/Berlin)';

-- The audit columns every mutable table carries, defined once; triggers stamp
-- them from the session context (a later migration).
CREATE TEMP TABLE audit_columns (
  created_at  timestamptz NOT NULL DEFAULT now(),
  created_by  uuid,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  updated_by  uuid,
  deleted_at  timestamptz,
  deleted_by  uuid
) ON COMMIT DROP;

CREATE TABLE tenants (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name        text NOT NULL CHECK (btrim(name) <> ''),
  kind        text NOT NULL DEFAULT 'solo' CHECK (kind IN ('solo', 'org')),
  plan        text NOT NULL DEFAULT 'free' CHECK (btrim(plan) <> ''),
  LIKE audit_columns INCLUDING DEFAULTS
);

-- Users are identities shared by tenants (a user may belong to several), so
-- this table is not tenant-scoped; tenancy comes from memberships.
CREATE TABLE users (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  email         text NOT NULL CHECK (email ~ '^[^@\s]+@[^@\s]+$'),
  display_name  text,
  LIKE audit_columns INCLUDING DEFAULTS
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email)) WHERE deleted_at IS NULL;

CREATE TABLE memberships (
  tenant_id   uuid NOT NULL REFERENCES tenants (id),
  user_id     uuid NOT NULL REFERENCES users (id),
  role        text NOT NULL CHECK (role IN ('owner', 'manager', 'viewer')),
  LIKE audit_columns INCLUDING DEFAULTS,
  PRIMARY KEY (tenant_id, user_id)
);
-- "Which tenants is this user in?" (policies and login).
CREATE INDEX memberships_user_idx ON memberships (user_id, tenant_id) WHERE deleted_at IS NULL;

CREATE TABLE garages (
  tenant_id    uuid NOT NULL REFERENCES tenants (id),
  id           uuid NOT NULL DEFAULT gen_random_uuid(),
  name         text NOT NULL CHECK (btrim(name) <> ''),
  description  text,
  LIKE audit_columns INCLUDING DEFAULTS,
  PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX garages_name_key ON garages (tenant_id, lower(name)) WHERE deleted_at IS NULL;

CREATE TABLE vehicles (
  tenant_id      uuid NOT NULL REFERENCES tenants (id),
  id             uuid NOT NULL DEFAULT gen_random_uuid(),
  garage_id      uuid,
  year           integer CHECK (year BETWEEN 1885 AND 2100),
  make           text,
  model          text,
  trim           text,
  color          text,
  vin            text CHECK (vin ~ '^[A-HJ-NPR-Z0-9]{5,17}$'),
  plate          text CHECK (btrim(plate) <> ''),
  nickname       text,
  timezone       text NOT NULL DEFAULT 'UTC' CHECK (is_valid_timezone(timezone)),
  odometer_unit  text NOT NULL DEFAULT 'mi' CHECK (odometer_unit IN ('mi', 'km')),
  LIKE audit_columns INCLUDING DEFAULTS,
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, garage_id) REFERENCES garages (tenant_id, id)
    ON DELETE SET NULL (garage_id)
);
COMMENT ON COLUMN vehicles.vin IS 'upper-case VIN (17 characters since 1981; shorter for classics)';
COMMENT ON COLUMN vehicles.odometer_unit IS 'unit of every mileage recorded for this vehicle: mi or km';
CREATE UNIQUE INDEX vehicles_vin_key ON vehicles (tenant_id, vin)
  WHERE vin IS NOT NULL AND deleted_at IS NULL;
CREATE UNIQUE INDEX vehicles_plate_key ON vehicles (tenant_id, upper(plate))
  WHERE plate IS NOT NULL AND deleted_at IS NULL;
CREATE INDEX vehicles_garage_idx ON vehicles (tenant_id, garage_id) WHERE deleted_at IS NULL;

-- The timeline. Immutable once written (enforced in a later migration);
-- corrections are new events.
CREATE TABLE vehicle_events (
  tenant_id    uuid NOT NULL,
  id           uuid NOT NULL DEFAULT gen_random_uuid(),
  vehicle_id   uuid NOT NULL,
  type         text NOT NULL, -- checked against sql/payloads.json's types (0002)
  occurred_at  timestamptz NOT NULL CHECK (occurred_at > '1885-01-01'),
  mileage      numeric(10, 1) CHECK (mileage >= 0),
  payload      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(payload) = 'object'),
  notes        text,
  created_at   timestamptz NOT NULL DEFAULT now(),
  created_by   uuid,
  PRIMARY KEY (tenant_id, id, occurred_at),
  FOREIGN KEY (tenant_id, vehicle_id) REFERENCES vehicles (tenant_id, id)
) PARTITION BY RANGE (occurred_at);
COMMENT ON COLUMN vehicle_events.mileage IS
  'odometer reading at the event, in the vehicle''s odometer_unit (the original design''s "miles")';
-- A vehicle's timeline, newest first, keyset-paginated on (occurred_at, id).
CREATE INDEX vehicle_events_vehicle_idx ON vehicle_events (tenant_id, vehicle_id, occurred_at, id);
-- A tenant's (or garage's) timeline, and reports over a time range.
CREATE INDEX vehicle_events_tenant_idx ON vehicle_events (tenant_id, occurred_at);
-- Catches rows outside every range partition until maintenance moves them.
CREATE TABLE vehicle_events_default PARTITION OF vehicle_events DEFAULT;

CREATE TABLE vehicle_images (
  tenant_id          uuid NOT NULL,
  id                 uuid NOT NULL DEFAULT gen_random_uuid(),
  vehicle_id         uuid NOT NULL,
  event_id           uuid,
  event_occurred_at  timestamptz,
  storage_url        text NOT NULL CHECK (btrim(storage_url) <> ''),
  thumbnail_url      text,
  caption            text,
  LIKE audit_columns INCLUDING DEFAULTS,
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, vehicle_id) REFERENCES vehicles (tenant_id, id),
  FOREIGN KEY (tenant_id, event_id, event_occurred_at)
    REFERENCES vehicle_events (tenant_id, id, occurred_at),
  CHECK ((event_id IS NULL) = (event_occurred_at IS NULL))
);
CREATE INDEX vehicle_images_vehicle_idx ON vehicle_images (tenant_id, vehicle_id) WHERE deleted_at IS NULL;
CREATE INDEX vehicle_images_event_idx ON vehicle_images (tenant_id, event_id) WHERE event_id IS NOT NULL;

CREATE TABLE reminders (
  tenant_id     uuid NOT NULL,
  id            uuid NOT NULL DEFAULT gen_random_uuid(),
  vehicle_id    uuid,
  garage_id     uuid,
  title         text NOT NULL CHECK (btrim(title) <> ''),
  description   text,
  due_on        date,
  due_mileage   numeric(10, 1) CHECK (due_mileage >= 0),
  status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'completed', 'dismissed')),
  completed_at  timestamptz,
  LIKE audit_columns INCLUDING DEFAULTS,
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, vehicle_id) REFERENCES vehicles (tenant_id, id),
  FOREIGN KEY (tenant_id, garage_id) REFERENCES garages (tenant_id, id),
  CHECK (vehicle_id IS NOT NULL OR garage_id IS NOT NULL),
  CHECK (due_on IS NOT NULL OR due_mileage IS NOT NULL),
  CHECK ((status = 'completed') = (completed_at IS NOT NULL))
);
COMMENT ON COLUMN reminders.due_on IS 'a calendar date in the vehicle''s timezone (whichever of date and mileage comes first)';
CREATE INDEX reminders_due_idx ON reminders (tenant_id, status, due_on) WHERE deleted_at IS NULL;
CREATE INDEX reminders_vehicle_idx ON reminders (tenant_id, vehicle_id) WHERE deleted_at IS NULL;

-- Audit columns where they are queried: "what changed since" (sync) and the
-- trash of soft-deleted rows (restore, purge).
CREATE INDEX tenants_deleted_idx ON tenants (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX users_deleted_idx ON users (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX memberships_updated_idx ON memberships (tenant_id, updated_at);
CREATE INDEX garages_updated_idx ON garages (tenant_id, updated_at);
CREATE INDEX garages_deleted_idx ON garages (tenant_id, deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX vehicles_updated_idx ON vehicles (tenant_id, updated_at);
CREATE INDEX vehicles_deleted_idx ON vehicles (tenant_id, deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX vehicle_images_updated_idx ON vehicle_images (tenant_id, updated_at);
CREATE INDEX vehicle_images_deleted_idx ON vehicle_images (tenant_id, deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX reminders_updated_idx ON reminders (tenant_id, updated_at);
CREATE INDEX reminders_deleted_idx ON reminders (tenant_id, deleted_at) WHERE deleted_at IS NOT NULL;
