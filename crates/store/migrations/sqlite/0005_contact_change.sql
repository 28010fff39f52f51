-- A contact change is a flow too: the new email or phone waits on the flow
-- until the code sent to it comes back.
ALTER TABLE recovery_flows ADD COLUMN contact_kind TEXT;
ALTER TABLE recovery_flows ADD COLUMN contact_value TEXT;
