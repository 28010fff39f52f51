-- The worker that holds a message's lease: only it may record the outcome, so a
-- worker whose lease ran out cannot overwrite the one that took the message over.
ALTER TABLE outbox_messages ADD COLUMN lease_owner UUID;
CREATE INDEX outbox_by_provider_id ON outbox_messages (provider_id);
