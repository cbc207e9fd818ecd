-- Undoes 0021: every new reminder's chain rebuilt by its row trigger, as
-- 0010 made it.
DROP TRIGGER reminders_chain_insert ON reminders;
DROP TRIGGER reminders_chain ON reminders;
CREATE TRIGGER reminders_chain AFTER INSERT OR UPDATE ON reminders
  FOR EACH ROW EXECUTE FUNCTION reminder_changed();
DROP FUNCTION reminders_inserted();
