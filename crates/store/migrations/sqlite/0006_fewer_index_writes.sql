-- Fewer index pages written per reset request: every index on these tables
-- costs each request a page write (docs/BENCHMARKS.md).

-- A token is looked up by account only while it is open (account_tokens_open),
-- and by patient only as an invitation: an activation code or an enrollment
-- link, issued before the account exists, so with no account_id.
DROP INDEX account_tokens_by_account;
DROP INDEX account_tokens_by_patient;
CREATE INDEX account_tokens_invitations ON account_tokens (patient_id, purpose)
    WHERE account_id IS NULL;

-- One index serves both the staff console's history of an account's flows and
-- a newer request's revocation of the live ones (revoked_at IS NULL).
DROP INDEX recovery_flow_accounts_live;
DROP INDEX recovery_flow_accounts_by_account;
CREATE INDEX recovery_flow_accounts_by_account
    ON recovery_flow_accounts (account_id, revoked_at, purpose);

-- A message has a provider's id (for its delivery receipts) only once sent.
DROP INDEX outbox_by_provider_id;
CREATE INDEX outbox_by_provider_id ON outbox_messages (provider_id)
    WHERE provider_id IS NOT NULL;
