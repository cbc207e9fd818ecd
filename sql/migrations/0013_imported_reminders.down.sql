-- Undoes 0013.
DROP TRIGGER b_repeat_from_source ON reminders;
DROP FUNCTION reminder_repeat_from_source();
