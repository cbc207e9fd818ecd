-- motomind 0017: how the product captures data (issue #15): a phone photo
-- of a receipt or an odometer, read by a vision model, confirmed by the
-- user, becomes an event.
--  * photos: vehicle_images gains what a capture needs (content type,
--    size, dimensions, checksum, taken_at, the detected kind and the fields
--    a model extracted with their confidence); photo_metadata holds the
--    device's capture metadata (EXIF-like, GPS); event_photos links several
--    photos to one event with an order and a role;
--  * capture_sessions: one row per capture flow (steps reached, photos
--    taken, the event produced or where it was abandoned);
--  * vision_metrics (one row per model call) and vision_accuracy (what the
--    user confirmed against what the model read; the event made from it);
--  * location_corrections: a recorded position against the corrected one;
--  * conversation_threads and conversation_messages (append-only, with
--    token counts and cost in a currency);
--  * vehicle_spec_enhancements (decoded or enriched specs by source) and
--    user_maintenance_preferences (units, currency, reminder lead times,
--    service intervals, per user and/or vehicle);
--  * analytics views read with the reader's rights.
-- Every table is protected by protect_tenant_table (policies, stamps,
-- audit, grants from its kind and columns). Rows name their vehicle
-- through composite foreign keys, so a photo, a vision call or a result
-- can never belong to another vehicle than the event it is linked to.

-- ---- photos ------------------------------------------------------------------

-- The kinds of thing a photo shows (detected by a model, or the role a
-- photo plays for an event).
CREATE DOMAIN photo_kind AS text
  CONSTRAINT photo_kind_check CHECK (VALUE IN ('receipt', 'odometer', 'damage', 'document', 'vehicle', 'fuel_pump', 'vin',
                                               'plate', 'other'));

-- A model's extracted fields: an object of fields, each an object with a
-- value and, when given, a confidence from 0 to 1.
CREATE FUNCTION is_extracted_fields(f jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT jsonb_typeof(f) = 'object' AND NOT EXISTS (
    SELECT 1 FROM jsonb_each(f) e
     WHERE jsonb_typeof(e.value) <> 'object' OR NOT e.value ? 'value'
        OR (e.value ? 'confidence' AND (jsonb_typeof(e.value->'confidence') <> 'number'
                                        OR (e.value->>'confidence')::numeric NOT BETWEEN 0 AND 1)))
$$;

ALTER TABLE vehicle_images
  ADD COLUMN content_type text CONSTRAINT vehicle_images_content_type_check CHECK (content_type ~ '^image/[a-z0-9.+-]+$'),
  ADD COLUMN byte_size bigint CONSTRAINT vehicle_images_byte_size_check CHECK (byte_size > 0),
  ADD COLUMN width integer CONSTRAINT vehicle_images_width_check CHECK (width > 0),
  ADD COLUMN height integer CONSTRAINT vehicle_images_height_check CHECK (height > 0),
  ADD COLUMN checksum text CONSTRAINT vehicle_images_checksum_check CHECK (checksum ~ '^[0-9a-f]{64}$'),
  ADD COLUMN taken_at timestamptz,
  ADD COLUMN detected_kind photo_kind,
  ADD COLUMN ai_model text CONSTRAINT vehicle_images_ai_model_check CHECK (btrim(ai_model) <> ''),
  ADD COLUMN ai_confidence numeric(4, 3) CONSTRAINT vehicle_images_ai_confidence_check CHECK (ai_confidence BETWEEN 0 AND 1),
  ADD COLUMN ai_fields jsonb CONSTRAINT vehicle_images_ai_fields_check CHECK (is_extracted_fields(ai_fields)),
  ADD COLUMN capture_session_id uuid,
  ADD CONSTRAINT vehicle_images_vehicle_key UNIQUE (tenant_id, vehicle_id, id);
ALTER TABLE vehicle_images RENAME CONSTRAINT vehicle_images_check TO vehicle_images_event_pair_check;
COMMENT ON COLUMN vehicle_images.checksum IS 'SHA-256 of the bytes, hex; a live photo is stored once per tenant';
COMMENT ON COLUMN vehicle_images.ai_fields IS
  'what a model read: {"mileage": {"value": 48210, "confidence": 0.94}, ...}';
CREATE UNIQUE INDEX vehicle_images_checksum_key ON vehicle_images (tenant_id, checksum)
  WHERE deleted_at IS NULL AND checksum IS NOT NULL;

CREATE TABLE photo_metadata (
  tenant_id       uuid NOT NULL REFERENCES tenants (id),
  id              uuid NOT NULL DEFAULT gen_random_uuid(),
  image_id        uuid NOT NULL,
  vehicle_id      uuid NOT NULL,
  device_make     text,
  device_model    text,
  os              text,
  app_version     text,
  latitude        numeric(9, 6) CONSTRAINT photo_metadata_latitude_check CHECK (latitude BETWEEN -90 AND 90),
  longitude       numeric(9, 6) CONSTRAINT photo_metadata_longitude_check CHECK (longitude BETWEEN -180 AND 180),
  gps_accuracy_m  numeric(8, 1) CONSTRAINT photo_metadata_gps_accuracy_check CHECK (gps_accuracy_m >= 0),
  altitude_m      numeric(8, 1),
  heading_deg     numeric(5, 1) CONSTRAINT photo_metadata_heading_check CHECK (heading_deg >= 0 AND heading_deg < 360),
  exif            jsonb NOT NULL DEFAULT '{}' CONSTRAINT photo_metadata_exif_check CHECK (jsonb_typeof(exif) = 'object'),
  created_at timestamptz NOT NULL DEFAULT now(), created_by uuid,
  updated_at timestamptz NOT NULL DEFAULT now(), updated_by uuid,
  deleted_at timestamptz, deleted_by uuid,
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, vehicle_id, image_id) REFERENCES vehicle_images (tenant_id, vehicle_id, id),
  CONSTRAINT photo_metadata_position_pair_check CHECK ((latitude IS NULL) = (longitude IS NULL))
);
CREATE UNIQUE INDEX photo_metadata_image_key ON photo_metadata (tenant_id, image_id) WHERE deleted_at IS NULL;
COMMENT ON TABLE photo_metadata IS 'a photo''s capture metadata from the device (one live row per photo)';

CREATE TABLE event_photos (
  tenant_id          uuid NOT NULL REFERENCES tenants (id),
  id                 uuid NOT NULL DEFAULT gen_random_uuid(),
  vehicle_id         uuid NOT NULL,
  event_id           uuid NOT NULL,
  event_occurred_at  timestamptz NOT NULL,
  image_id           uuid NOT NULL,
  position           smallint NOT NULL DEFAULT 1 CONSTRAINT event_photos_position_check CHECK (position BETWEEN 1 AND 100),
  role               photo_kind NOT NULL DEFAULT 'other',
  created_at timestamptz NOT NULL DEFAULT now(), created_by uuid,
  updated_at timestamptz NOT NULL DEFAULT now(), updated_by uuid,
  deleted_at timestamptz, deleted_by uuid,
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, vehicle_id, image_id) REFERENCES vehicle_images (tenant_id, vehicle_id, id),
  FOREIGN KEY (tenant_id, event_id, event_occurred_at) REFERENCES vehicle_events (tenant_id, id, occurred_at)
);
CREATE UNIQUE INDEX event_photos_link_key ON event_photos (tenant_id, event_id, image_id) WHERE deleted_at IS NULL;
CREATE INDEX event_photos_event_idx ON event_photos (tenant_id, event_id, position) WHERE deleted_at IS NULL;
COMMENT ON TABLE event_photos IS 'photos of an event, in order, each with its role (receipt, odometer, ...)';

-- Rows naming an event and a vehicle: the event must be that vehicle's (an
-- event that does not exist is the foreign key's to report).
CREATE FUNCTION check_event_vehicle() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
  IF NEW.event_id IS NOT NULL AND EXISTS (
      SELECT 1 FROM vehicle_events e WHERE e.tenant_id = NEW.tenant_id AND e.id = NEW.event_id
         AND e.occurred_at = NEW.event_occurred_at AND e.vehicle_id <> NEW.vehicle_id) THEN
    RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation', TABLE = TG_TABLE_NAME, COLUMN = 'event_id',
      MESSAGE = format('event_id: event %s is not one of vehicle %s''s events', NEW.event_id, NEW.vehicle_id);
  END IF;
  RETURN NEW;
END
$fn$;
CREATE TRIGGER event_vehicle BEFORE INSERT OR UPDATE OF event_id, event_occurred_at, vehicle_id ON event_photos
  FOR EACH ROW EXECUTE FUNCTION check_event_vehicle();
CREATE TRIGGER event_vehicle BEFORE INSERT OR UPDATE OF event_id, event_occurred_at, vehicle_id ON vehicle_images
  FOR EACH ROW EXECUTE FUNCTION check_event_vehicle();

-- ---- capture sessions --------------------------------------------------------

CREATE TABLE capture_sessions (
  tenant_id          uuid NOT NULL REFERENCES tenants (id),
  id                 uuid NOT NULL DEFAULT gen_random_uuid(),
  vehicle_id         uuid NOT NULL,
  flow               text NOT NULL CONSTRAINT capture_sessions_flow_check
                       CHECK (flow IN ('fuel', 'service', 'odometer', 'damage', 'document', 'inspection', 'receipt', 'other')),
  status             text NOT NULL DEFAULT 'in_progress' CONSTRAINT capture_sessions_status_check
                       CHECK (status IN ('in_progress', 'completed', 'abandoned')),
  started_at         timestamptz NOT NULL DEFAULT now(),
  ended_at           timestamptz,
  steps              text[] NOT NULL DEFAULT '{}' CONSTRAINT capture_sessions_steps_check
                       CHECK (array_position(steps, NULL) IS NULL AND cardinality(steps) <= 100),
  last_step          text GENERATED ALWAYS AS (steps[cardinality(steps)]) STORED,
  photos_taken       integer NOT NULL DEFAULT 0 CONSTRAINT capture_sessions_photos_taken_check CHECK (photos_taken >= 0),
  event_id           uuid,
  event_occurred_at  timestamptz,
  abandon_reason     text,
  client             jsonb NOT NULL DEFAULT '{}' CONSTRAINT capture_sessions_client_check CHECK (jsonb_typeof(client) = 'object'),
  duration_s         numeric GENERATED ALWAYS AS (extract(epoch FROM ended_at - started_at)) STORED,
  created_at timestamptz NOT NULL DEFAULT now(), created_by uuid,
  updated_at timestamptz NOT NULL DEFAULT now(), updated_by uuid,
  deleted_at timestamptz, deleted_by uuid,
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, vehicle_id) REFERENCES vehicles (tenant_id, id),
  FOREIGN KEY (tenant_id, event_id, event_occurred_at) REFERENCES vehicle_events (tenant_id, id, occurred_at),
  CONSTRAINT capture_sessions_event_pair_check CHECK ((event_id IS NULL) = (event_occurred_at IS NULL)),
  CONSTRAINT capture_sessions_event_when_completed CHECK (event_id IS NULL OR status = 'completed'),
  CONSTRAINT capture_sessions_ended_when_done CHECK ((status = 'in_progress') = (ended_at IS NULL)),
  CONSTRAINT capture_sessions_ended_after_start CHECK (ended_at >= started_at)
);
CREATE INDEX capture_sessions_started_idx ON capture_sessions (tenant_id, started_at) WHERE deleted_at IS NULL;
COMMENT ON COLUMN capture_sessions.steps IS 'the steps reached, in order (the client''s names, e.g. photo, review, confirm)';
COMMENT ON COLUMN capture_sessions.started_at IS 'when the flow started on the device (offline captures report it later)';

-- A session that ends gets its end time from the database unless the
-- device reported one; a finished session never reopens.
CREATE FUNCTION capture_session_end() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  IF TG_OP = 'UPDATE' AND OLD.status <> 'in_progress' AND NEW.status IS DISTINCT FROM OLD.status THEN
    RAISE EXCEPTION USING ERRCODE = 'check_violation', TABLE = TG_TABLE_NAME, COLUMN = 'status',
      MESSAGE = format('status: capture session %s is already %s', OLD.id, OLD.status);
  END IF;
  IF NEW.status <> 'in_progress' AND NEW.ended_at IS NULL THEN
    NEW.ended_at := greatest(now(), NEW.started_at);
  END IF;
  RETURN NEW;
END
$fn$;
CREATE TRIGGER session_end BEFORE INSERT OR UPDATE ON capture_sessions
  FOR EACH ROW EXECUTE FUNCTION capture_session_end();
CREATE TRIGGER event_vehicle BEFORE INSERT OR UPDATE OF event_id, event_occurred_at, vehicle_id ON capture_sessions
  FOR EACH ROW EXECUTE FUNCTION check_event_vehicle();

ALTER TABLE vehicle_images ADD CONSTRAINT vehicle_images_capture_session_fkey
  FOREIGN KEY (tenant_id, capture_session_id) REFERENCES capture_sessions (tenant_id, id);

-- ---- vision ------------------------------------------------------------------

CREATE TABLE vision_metrics (
  tenant_id           uuid NOT NULL REFERENCES tenants (id),
  id                  uuid NOT NULL DEFAULT gen_random_uuid(),
  vehicle_id          uuid NOT NULL,
  image_id            uuid NOT NULL,
  capture_session_id  uuid,
  model               text NOT NULL CONSTRAINT vision_metrics_model_check CHECK (btrim(model) <> ''),
  task                photo_kind NOT NULL,
  latency_ms          integer NOT NULL CONSTRAINT vision_metrics_latency_check CHECK (latency_ms >= 0),
  confidence          numeric(4, 3) CONSTRAINT vision_metrics_confidence_check CHECK (confidence BETWEEN 0 AND 1),
  tokens_in           integer CONSTRAINT vision_metrics_tokens_in_check CHECK (tokens_in >= 0),
  tokens_out          integer CONSTRAINT vision_metrics_tokens_out_check CHECK (tokens_out >= 0),
  cost                numeric(12, 6) CONSTRAINT vision_metrics_cost_check CHECK (cost >= 0),
  currency            text CONSTRAINT vision_metrics_currency_check CHECK (currency ~ '^[A-Z]{3}$'),
  fields              jsonb NOT NULL DEFAULT '{}' CONSTRAINT vision_metrics_fields_check CHECK (is_extracted_fields(fields)),
  error               text,
  created_at          timestamptz NOT NULL DEFAULT now(),
  created_by          uuid,
  PRIMARY KEY (tenant_id, id),
  CONSTRAINT vision_metrics_vehicle_key UNIQUE (tenant_id, vehicle_id, id),
  FOREIGN KEY (tenant_id, vehicle_id, image_id) REFERENCES vehicle_images (tenant_id, vehicle_id, id),
  FOREIGN KEY (tenant_id, capture_session_id) REFERENCES capture_sessions (tenant_id, id),
  CONSTRAINT vision_metrics_cost_currency_check CHECK (cost IS NULL OR currency IS NOT NULL)
);
CREATE INDEX vision_metrics_created_idx ON vision_metrics (tenant_id, created_at);
COMMENT ON TABLE vision_metrics IS 'one row per vision model call on a photo (append-only)';

-- Whether a model's value is the one the user confirmed: numbers compare
-- as numbers (48210 = 48210.0), other text case- and space-insensitively.
CREATE FUNCTION values_match(extracted text, confirmed text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN extracted IS NULL THEN false
              WHEN btrim(extracted) ~ '^-?[0-9]+(\.[0-9]+)?$' AND btrim(confirmed) ~ '^-?[0-9]+(\.[0-9]+)?$'
                THEN btrim(extracted)::numeric = btrim(confirmed)::numeric
              ELSE upper(regexp_replace(extracted, '\s+', '', 'g')) = upper(regexp_replace(confirmed, '\s+', '', 'g')) END
$$;

CREATE TABLE vision_accuracy (
  tenant_id          uuid NOT NULL REFERENCES tenants (id),
  id                 uuid NOT NULL DEFAULT gen_random_uuid(),
  vehicle_id         uuid NOT NULL,
  vision_metric_id   uuid NOT NULL,
  field              text NOT NULL CONSTRAINT vision_accuracy_field_check CHECK (field ~ '^[a-z][a-z0-9_]*$'),
  extracted          text,
  confirmed          text NOT NULL,
  correct            boolean GENERATED ALWAYS AS (values_match(extracted, confirmed)) STORED,
  event_id           uuid,
  event_occurred_at  timestamptz,
  created_at         timestamptz NOT NULL DEFAULT now(),
  created_by         uuid,
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, vehicle_id, vision_metric_id) REFERENCES vision_metrics (tenant_id, vehicle_id, id),
  FOREIGN KEY (tenant_id, event_id, event_occurred_at) REFERENCES vehicle_events (tenant_id, id, occurred_at),
  CONSTRAINT vision_accuracy_event_pair_check CHECK ((event_id IS NULL) = (event_occurred_at IS NULL))
);
CREATE UNIQUE INDEX vision_accuracy_field_key ON vision_accuracy (tenant_id, vision_metric_id, field);
CREATE INDEX vision_accuracy_event_idx ON vision_accuracy (tenant_id, event_id) WHERE event_id IS NOT NULL;
CREATE TRIGGER event_vehicle BEFORE INSERT ON vision_accuracy FOR EACH ROW EXECUTE FUNCTION check_event_vehicle();
COMMENT ON TABLE vision_accuracy IS
  'a field a model read, against the value the user confirmed, and the event made from it (append-only)';

-- ---- locations ---------------------------------------------------------------

-- Great-circle distance in metres between two positions (haversine, mean
-- Earth radius 6,371,008.8 m; within 0.5 % of the ellipsoid).
CREATE FUNCTION great_circle_m(lat1 numeric, lon1 numeric, lat2 numeric, lon2 numeric) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT round((2 * 6371008.8 * asin(sqrt(
           sin(radians((lat2 - lat1)::float8) / 2) ^ 2
           + cos(radians(lat1::float8)) * cos(radians(lat2::float8)) * sin(radians((lon2 - lon1)::float8) / 2) ^ 2)))::numeric, 1)
$$;

CREATE TABLE location_corrections (
  tenant_id           uuid NOT NULL REFERENCES tenants (id),
  id                  uuid NOT NULL DEFAULT gen_random_uuid(),
  vehicle_id          uuid NOT NULL,
  event_id            uuid,
  event_occurred_at   timestamptz,
  capture_session_id  uuid,
  recorded_latitude   numeric(9, 6) NOT NULL CONSTRAINT location_corrections_recorded_latitude_check
                        CHECK (recorded_latitude BETWEEN -90 AND 90),
  recorded_longitude  numeric(9, 6) NOT NULL CONSTRAINT location_corrections_recorded_longitude_check
                        CHECK (recorded_longitude BETWEEN -180 AND 180),
  recorded_accuracy_m numeric(8, 1) CONSTRAINT location_corrections_accuracy_check CHECK (recorded_accuracy_m >= 0),
  latitude            numeric(9, 6) NOT NULL CONSTRAINT location_corrections_latitude_check CHECK (latitude BETWEEN -90 AND 90),
  longitude           numeric(9, 6) NOT NULL CONSTRAINT location_corrections_longitude_check CHECK (longitude BETWEEN -180 AND 180),
  distance_m          numeric GENERATED ALWAYS AS
                        (great_circle_m(recorded_latitude, recorded_longitude, latitude, longitude)) STORED,
  reason              text NOT NULL DEFAULT 'user' CONSTRAINT location_corrections_reason_check
                        CHECK (reason IN ('user', 'geocoder', 'gps_drift', 'station_match', 'other')),
  source              text,
  place_name          text,
  created_at          timestamptz NOT NULL DEFAULT now(),
  created_by          uuid,
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, vehicle_id) REFERENCES vehicles (tenant_id, id),
  FOREIGN KEY (tenant_id, event_id, event_occurred_at) REFERENCES vehicle_events (tenant_id, id, occurred_at),
  FOREIGN KEY (tenant_id, capture_session_id) REFERENCES capture_sessions (tenant_id, id),
  CONSTRAINT location_corrections_event_pair_check CHECK ((event_id IS NULL) = (event_occurred_at IS NULL))
);
CREATE TRIGGER event_vehicle BEFORE INSERT ON location_corrections FOR EACH ROW EXECUTE FUNCTION check_event_vehicle();
COMMENT ON TABLE location_corrections IS 'a position a capture recorded and the corrected one (append-only)';

-- ---- AI conversations ----------------------------------------------------------

CREATE TABLE conversation_threads (
  tenant_id   uuid NOT NULL REFERENCES tenants (id),
  id          uuid NOT NULL DEFAULT gen_random_uuid(),
  vehicle_id  uuid,
  title       text CONSTRAINT conversation_threads_title_check CHECK (btrim(title) <> ''),
  created_at timestamptz NOT NULL DEFAULT now(), created_by uuid,
  updated_at timestamptz NOT NULL DEFAULT now(), updated_by uuid,
  deleted_at timestamptz, deleted_by uuid,
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, vehicle_id) REFERENCES vehicles (tenant_id, id)
);
COMMENT ON COLUMN conversation_threads.vehicle_id IS
  'the vehicle talked about (NULL: the whole tenant, written by owners only, as tenant-wide reminders)';

CREATE TABLE conversation_messages (
  tenant_id    uuid NOT NULL REFERENCES tenants (id),
  id           uuid NOT NULL DEFAULT gen_random_uuid(),
  thread_id    uuid NOT NULL,
  seq          integer NOT NULL DEFAULT 0,
  role         text NOT NULL CONSTRAINT conversation_messages_role_check CHECK (role IN ('user', 'assistant', 'system', 'tool')),
  content      text NOT NULL,
  model        text CONSTRAINT conversation_messages_model_check CHECK (btrim(model) <> ''),
  tokens_in    integer CONSTRAINT conversation_messages_tokens_in_check CHECK (tokens_in >= 0),
  tokens_out   integer CONSTRAINT conversation_messages_tokens_out_check CHECK (tokens_out >= 0),
  cost         numeric(12, 6) CONSTRAINT conversation_messages_cost_check CHECK (cost >= 0),
  currency     text CONSTRAINT conversation_messages_currency_check CHECK (currency ~ '^[A-Z]{3}$'),
  latency_ms   integer CONSTRAINT conversation_messages_latency_check CHECK (latency_ms >= 0),
  event_ids    uuid[] NOT NULL DEFAULT '{}',
  image_ids    uuid[] NOT NULL DEFAULT '{}',
  created_at   timestamptz NOT NULL DEFAULT now(),
  created_by   uuid,
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, thread_id) REFERENCES conversation_threads (tenant_id, id),
  CONSTRAINT conversation_messages_seq_key UNIQUE (tenant_id, thread_id, seq),
  CONSTRAINT conversation_messages_model_of_assistant CHECK (role <> 'assistant' OR model IS NOT NULL),
  CONSTRAINT conversation_messages_cost_currency_check CHECK (cost IS NULL OR currency IS NOT NULL)
);
CREATE INDEX conversation_messages_created_idx ON conversation_messages (tenant_id, created_at);
COMMENT ON COLUMN conversation_messages.seq IS 'the message''s place in its thread (1, 2, ...), given by the database';
COMMENT ON COLUMN conversation_messages.event_ids IS 'events the message refers to (each one of the tenant''s)';

-- A message's place in its thread (the thread row is locked, so two
-- writers never take one number), and its references: events and photos of
-- the tenant, live threads only.
CREATE FUNCTION conversation_message_insert() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
  missing uuid;
BEGIN
  PERFORM 1 FROM conversation_threads t WHERE t.tenant_id = NEW.tenant_id AND t.id = NEW.thread_id
                                          AND t.deleted_at IS NULL FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation', TABLE = TG_TABLE_NAME, COLUMN = 'thread_id',
      MESSAGE = format('thread_id: no live conversation thread %s', NEW.thread_id);
  END IF;
  NEW.seq := coalesce((SELECT max(m.seq) FROM conversation_messages m
                        WHERE m.tenant_id = NEW.tenant_id AND m.thread_id = NEW.thread_id), 0) + 1;
  SELECT r INTO missing FROM unnest(NEW.event_ids) r
   WHERE NOT EXISTS (SELECT 1 FROM vehicle_events e WHERE e.tenant_id = NEW.tenant_id AND e.id = r) LIMIT 1;
  IF missing IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation', TABLE = TG_TABLE_NAME, COLUMN = 'event_ids',
      MESSAGE = format('event_ids: no event %s in this tenant', missing);
  END IF;
  SELECT r INTO missing FROM unnest(NEW.image_ids) r
   WHERE NOT EXISTS (SELECT 1 FROM vehicle_images i WHERE i.tenant_id = NEW.tenant_id AND i.id = r) LIMIT 1;
  IF missing IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation', TABLE = TG_TABLE_NAME, COLUMN = 'image_ids',
      MESSAGE = format('image_ids: no photo %s in this tenant', missing);
  END IF;
  RETURN NEW;
END
$fn$;
CREATE TRIGGER message_insert BEFORE INSERT ON conversation_messages
  FOR EACH ROW EXECUTE FUNCTION conversation_message_insert();

-- ---- vehicle profiles -----------------------------------------------------------

CREATE TABLE vehicle_spec_enhancements (
  tenant_id       uuid NOT NULL REFERENCES tenants (id),
  id              uuid NOT NULL DEFAULT gen_random_uuid(),
  vehicle_id      uuid NOT NULL,
  source          text NOT NULL DEFAULT 'manual' CONSTRAINT vehicle_spec_enhancements_source_check
                    CHECK (source IN ('manual', 'vin_decoder', 'ai', 'import', 'manufacturer')),
  confidence      numeric(4, 3) CONSTRAINT vehicle_spec_enhancements_confidence_check CHECK (confidence BETWEEN 0 AND 1),
  engine          text,
  displacement_l  numeric(4, 2) CONSTRAINT vehicle_spec_enhancements_displacement_check CHECK (displacement_l > 0),
  power_kw        numeric(6, 1) CONSTRAINT vehicle_spec_enhancements_power_check CHECK (power_kw > 0),
  fuel_types      text[] NOT NULL DEFAULT '{}' CONSTRAINT vehicle_spec_enhancements_fuel_types_check
                    CHECK (fuel_types <@ ARRAY['petrol', 'diesel', 'electric', 'lpg', 'cng', 'hydrogen', 'e85']),
  tank_litres     numeric(6, 1) CONSTRAINT vehicle_spec_enhancements_tank_check CHECK (tank_litres > 0),
  battery_kwh     numeric(6, 1) CONSTRAINT vehicle_spec_enhancements_battery_check CHECK (battery_kwh > 0),
  drivetrain      text CONSTRAINT vehicle_spec_enhancements_drivetrain_check CHECK (drivetrain IN ('fwd', 'rwd', 'awd', '4wd')),
  transmission    text CONSTRAINT vehicle_spec_enhancements_transmission_check
                    CHECK (transmission IN ('manual', 'automatic', 'cvt', 'dct', 'single_speed')),
  body            text,
  specs           jsonb NOT NULL DEFAULT '{}' CONSTRAINT vehicle_spec_enhancements_specs_check
                    CHECK (jsonb_typeof(specs) = 'object'),
  created_at timestamptz NOT NULL DEFAULT now(), created_by uuid,
  updated_at timestamptz NOT NULL DEFAULT now(), updated_by uuid,
  deleted_at timestamptz, deleted_by uuid,
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, vehicle_id) REFERENCES vehicles (tenant_id, id)
);
CREATE UNIQUE INDEX vehicle_spec_enhancements_source_key ON vehicle_spec_enhancements (tenant_id, vehicle_id, source)
  WHERE deleted_at IS NULL;
COMMENT ON TABLE vehicle_spec_enhancements IS 'a vehicle''s specs as one source knows them (one live row per source)';

CREATE TABLE user_maintenance_preferences (
  tenant_id          uuid NOT NULL REFERENCES tenants (id),
  id                 uuid NOT NULL DEFAULT gen_random_uuid(),
  user_id            uuid REFERENCES users (id),
  vehicle_id         uuid,
  distance_unit      text CONSTRAINT user_maintenance_preferences_distance_unit_check CHECK (distance_unit IN ('km', 'mi')),
  volume_unit        text CONSTRAINT user_maintenance_preferences_volume_unit_check
                       CHECK (volume_unit IN ('l', 'gal_us', 'gal_uk')),
  currency           text CONSTRAINT user_maintenance_preferences_currency_check CHECK (currency ~ '^[A-Z]{3}$'),
  due_soon_days      integer CONSTRAINT user_maintenance_preferences_due_soon_days_check CHECK (due_soon_days BETWEEN 0 AND 3650),
  due_soon_distance  numeric(10, 1) CONSTRAINT user_maintenance_preferences_due_soon_distance_check
                       CHECK (due_soon_distance >= 0),
  service_intervals  jsonb NOT NULL DEFAULT '{}' CONSTRAINT user_maintenance_preferences_intervals_check
                       CHECK (jsonb_typeof(service_intervals) = 'object'),
  created_at timestamptz NOT NULL DEFAULT now(), created_by uuid,
  updated_at timestamptz NOT NULL DEFAULT now(), updated_by uuid,
  deleted_at timestamptz, deleted_by uuid,
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, vehicle_id) REFERENCES vehicles (tenant_id, id)
);
CREATE UNIQUE INDEX user_maintenance_preferences_scope_key ON user_maintenance_preferences (tenant_id, user_id, vehicle_id)
  NULLS NOT DISTINCT WHERE deleted_at IS NULL;
COMMENT ON TABLE user_maintenance_preferences IS
  'preferences for a user and/or a vehicle (NULL: everyone / every vehicle); a vehicle''s lead times '
  '(user NULL) are its reminders'' defaults between a reminder''s own and the tenant''s';
COMMENT ON COLUMN user_maintenance_preferences.service_intervals IS
  'per service type: {"oil_change": {"months": 12, "distance": 15000}} (distance in the vehicle''s unit)';

-- ---- protection, by kind ------------------------------------------------------

SELECT protect_tenant_table(t::regclass, 'mutable')
  FROM unnest(ARRAY['photo_metadata', 'event_photos', 'capture_sessions', 'conversation_threads',
                    'vehicle_spec_enhancements', 'user_maintenance_preferences']) t;
SELECT protect_tenant_table(t::regclass, 'append_only')
  FROM unnest(ARRAY['vision_metrics', 'vision_accuracy', 'location_corrections', 'conversation_messages']) t;

-- ---- analytics, read with the reader's rights ----------------------------------

-- Capture flows per month: how many finish, how fast, with how many photos.
CREATE VIEW capture_session_analytics WITH (security_invoker = true) AS
SELECT s.tenant_id, s.flow, date_trunc('month', s.started_at AT TIME ZONE 'UTC')::date AS month,
       count(*) AS sessions,
       count(*) FILTER (WHERE s.status = 'completed') AS completed,
       count(*) FILTER (WHERE s.status = 'abandoned') AS abandoned,
       count(*) FILTER (WHERE s.status = 'in_progress') AS in_progress,
       round(count(*) FILTER (WHERE s.status = 'completed')::numeric
             / nullif(count(*) FILTER (WHERE s.status <> 'in_progress'), 0), 3) AS completion_rate,
       round((percentile_cont(0.5) WITHIN GROUP (ORDER BY s.duration_s)
               FILTER (WHERE s.status = 'completed'))::numeric, 1) AS median_duration_s,
       round(avg(s.photos_taken), 2) AS avg_photos
  FROM capture_sessions s
 WHERE s.deleted_at IS NULL
 GROUP BY s.tenant_id, s.flow, 3;

-- Where users drop out: abandoned sessions by flow and the last step reached.
CREATE VIEW capture_abandonment_analysis WITH (security_invoker = true) AS
SELECT s.tenant_id, s.flow, coalesce(s.last_step, '(none)') AS last_step,
       count(*) AS abandoned,
       round(count(*)::numeric / sum(count(*)) OVER (PARTITION BY s.tenant_id, s.flow), 3) AS share_of_flow,
       round((percentile_cont(0.5) WITHIN GROUP (ORDER BY s.duration_s))::numeric, 1) AS median_duration_s,
       mode() WITHIN GROUP (ORDER BY s.abandon_reason) AS common_reason
  FROM capture_sessions s
 WHERE s.deleted_at IS NULL AND s.status = 'abandoned'
 GROUP BY s.tenant_id, s.flow, 3;

-- How far corrected positions were from recorded ones, by reason.
CREATE VIEW location_correction_stats WITH (security_invoker = true) AS
SELECT c.tenant_id, c.reason, count(*) AS corrections,
       round(avg(c.distance_m), 1) AS avg_distance_m,
       round((percentile_cont(0.5) WITHIN GROUP (ORDER BY c.distance_m))::numeric, 1) AS median_distance_m,
       round((percentile_cont(0.9) WITHIN GROUP (ORDER BY c.distance_m))::numeric, 1) AS p90_distance_m,
       max(c.distance_m) AS max_distance_m,
       count(*) FILTER (WHERE c.distance_m > 100) AS over_100_m
  FROM location_corrections c
 GROUP BY c.tenant_id, c.reason;

-- Accuracy of each model per task and field: the share of confirmed values
-- it read right, and its mean confidence and latency on them.
CREATE VIEW vision_accuracy_stats WITH (security_invoker = true) AS
SELECT r.tenant_id, m.model, m.task, r.field, count(*) AS results,
       count(*) FILTER (WHERE r.correct) AS correct,
       round(count(*) FILTER (WHERE r.correct)::numeric / count(*), 3) AS accuracy,
       round(avg(m.confidence), 3) AS avg_confidence,
       round(avg(m.latency_ms)) AS avg_latency_ms
  FROM vision_accuracy r
  JOIN vision_metrics m ON m.tenant_id = r.tenant_id AND m.id = r.vision_metric_id
 GROUP BY r.tenant_id, m.model, m.task, r.field;

-- AI usage per month, model and currency: conversation messages and vision
-- calls, with their tokens and cost (never summed across currencies).
CREATE VIEW ai_usage_monthly WITH (security_invoker = true) AS
SELECT u.tenant_id, date_trunc('month', u.created_at AT TIME ZONE 'UTC')::date AS month, u.source, u.model, u.currency,
       count(*) AS calls, coalesce(sum(u.tokens_in), 0) AS tokens_in, coalesce(sum(u.tokens_out), 0) AS tokens_out,
       sum(u.cost) AS cost
  FROM (SELECT tenant_id, created_at, 'conversation' AS source, model, currency, tokens_in, tokens_out, cost
          FROM conversation_messages WHERE model IS NOT NULL
        UNION ALL
        SELECT tenant_id, created_at, 'vision', model, currency, tokens_in, tokens_out, cost FROM vision_metrics) u
 GROUP BY u.tenant_id, 2, u.source, u.model, u.currency;

-- Garages in use: their live vehicles and how recently those logged events.
CREATE VIEW active_garages WITH (security_invoker = true) AS
SELECT g.tenant_id, g.id AS garage_id, g.name, count(v.id) AS vehicles,
       max(h.last_occurred_at) AS last_event_at,
       count(v.id) FILTER (WHERE h.last_occurred_at >= now() - interval '90 days') AS active_vehicles
  FROM garages g
  JOIN vehicles v ON v.tenant_id = g.tenant_id AND v.garage_id = g.id AND v.deleted_at IS NULL
  LEFT JOIN vehicle_event_heads h ON h.tenant_id = v.tenant_id AND h.vehicle_id = v.id
 WHERE g.deleted_at IS NULL
 GROUP BY g.tenant_id, g.id, g.name
HAVING max(h.last_occurred_at) >= now() - interval '90 days';

-- An event's photos, in order, with what the timeline shows of each.
CREATE VIEW event_photo_details WITH (security_invoker = true) AS
SELECT p.tenant_id, p.event_id, p.position, p.role, i.id AS image_id, i.storage_url, i.thumbnail_url, i.caption,
       i.content_type, i.width, i.height, i.taken_at, i.detected_kind, i.ai_confidence
  FROM event_photos p
  JOIN vehicle_images i ON i.tenant_id = p.tenant_id AND i.id = p.image_id AND i.deleted_at IS NULL
 WHERE p.deleted_at IS NULL;

DO $do$
BEGIN
  EXECUTE format('GRANT SELECT ON capture_session_analytics, capture_abandonment_analysis, location_correction_stats, '
                 'vision_accuracy_stats, ai_usage_monthly, active_garages, event_photo_details TO %I',
                 (SELECT value FROM settings WHERE key = 'app_role'));
END
$do$;
