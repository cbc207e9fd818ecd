-- Undoes 0023: VINs keep only their character set and length rule.
DROP TRIGGER vehicles_vin_check_digit ON vehicles;
DROP FUNCTION check_vin_digit();
DROP FUNCTION vin_check_digit(text);
