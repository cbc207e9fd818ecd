-- Reverts 0001: drops the core tables (and all their data).
DROP TABLE reminders;
DROP TABLE vehicle_images;
DROP TABLE vehicle_events;
DROP TABLE vehicles;
DROP TABLE garages;
DROP TABLE memberships;
DROP TABLE users;
DROP TABLE tenants;
DROP FUNCTION is_valid_timezone(text);
