-- Vehicle rules: the VIN check digit, and an odometer unit fixed under its
-- readings.
--
-- North American VINs (17 characters, made in the US, Canada or Mexico:
-- the first character 1-5) carry a check digit in position 9: the weighted
-- sum of the other characters' values, modulo 11 (10 written X). A typo in
-- such a VIN is caught when it is written; other VINs (Europe and Asia do
-- not require the digit, and pre-1981 VINs are shorter) keep the character
-- set and length rule of vehicles_vin_check only.

-- The check digit a 17-character VIN should carry (ISO 3779 / 49 CFR 565
-- transliteration and weights).
CREATE FUNCTION vin_check_digit(vin text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT CASE s % 11 WHEN 10 THEN 'X' ELSE (s % 11)::text END
  FROM (SELECT sum(translate(substr(vin, i, 1), 'ABCDEFGHJKLMNPRSTUVWXYZ', '12345678123457923456789')::integer
                   * (ARRAY[8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2])[i]) AS s
        FROM generate_series(1, 17) AS i) AS weighted
$$;
COMMENT ON FUNCTION vin_check_digit(text) IS
  'the check digit (0-9 or X) of a 17-character VIN of the characters vehicles_vin_check allows';

-- Refuses a North American VIN whose check digit is wrong, naming both;
-- checked when the VIN is written (not when another column of a vehicle
-- whose VIN predates this rule is).
CREATE FUNCTION check_vin_digit() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
  expected text;
BEGIN
  IF NEW.vin ~ '^[1-5][A-HJ-NPR-Z0-9]{16}$' AND (TG_OP = 'INSERT' OR NEW.vin IS DISTINCT FROM OLD.vin) THEN
    expected := vin_check_digit(NEW.vin);
    IF substr(NEW.vin, 9, 1) <> expected THEN
      RAISE EXCEPTION 'vin: check digit (9th character) is %, this VIN''s is % (a North American VIN: a character is mistyped)',
        substr(NEW.vin, 9, 1), expected
        USING ERRCODE = 'check_violation', CONSTRAINT = 'vehicles_vin_check_digit', TABLE = 'vehicles', COLUMN = 'vin';
    END IF;
  END IF;
  RETURN NEW;
END $$;

CREATE TRIGGER vehicles_vin_check_digit BEFORE INSERT OR UPDATE OF vin ON vehicles
  FOR EACH ROW EXECUTE FUNCTION check_vin_digit();

-- A vehicle's odometer unit is fixed once it has a mileage reading: every
-- reading, due mileage and economy figure is in it, and changing it would
-- silently misread them all (1,000 mi becoming 1,000 km). A vehicle logged
-- in the wrong unit is re-created in the right one.
CREATE FUNCTION check_unit_fixed() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  IF NEW.odometer_unit IS DISTINCT FROM OLD.odometer_unit AND EXISTS (
       SELECT 1 FROM vehicle_events e
        WHERE e.tenant_id = OLD.tenant_id AND e.vehicle_id = OLD.id AND e.mileage IS NOT NULL) THEN
    RAISE EXCEPTION 'odometer_unit: the vehicle''s readings are in %; changing it to % would misread every one of them',
      OLD.odometer_unit, NEW.odometer_unit
      USING ERRCODE = 'check_violation', CONSTRAINT = 'vehicles_unit_fixed', TABLE = 'vehicles', COLUMN = 'odometer_unit';
  END IF;
  RETURN NEW;
END $$;

CREATE TRIGGER vehicles_unit_fixed BEFORE UPDATE OF odometer_unit ON vehicles
  FOR EACH ROW EXECUTE FUNCTION check_unit_fixed();
