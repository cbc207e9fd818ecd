-- Undoes 0023: VINs keep only their character set and length rule; the
-- odometer unit may change under the readings again.
DROP TRIGGER vehicles_unit_fixed ON vehicles;
DROP FUNCTION check_unit_fixed();
DROP TRIGGER vehicles_vin_check_digit ON vehicles;
DROP FUNCTION check_vin_digit();
DROP FUNCTION vin_check_digit(text);
