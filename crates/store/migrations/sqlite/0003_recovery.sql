-- Recovery as built: one flow may cover several accounts (a family sharing an
-- email or phone), each destination with its own code, and each account's part
-- of a flow revoked on its own (a newer request, a password change). The
-- 0001 tables of the same name were never written by any release; they are
-- replaced whole.

DROP TABLE account_tokens;
DROP TABLE recovery_flows;

-- A recovery request. A flow with no accounts is a decoy (nothing matched): it
-- behaves like a real flow whose code is never right. lookup_key is a hash of
-- the purpose and the identifiers given, so a repeated request revokes the
-- older flow whether or not anything matched.
CREATE TABLE recovery_flows (
    id             BLOB    PRIMARY KEY,
    purpose        TEXT    NOT NULL CHECK (purpose IN ('password', 'username', 'contact')),
    channel        TEXT    NOT NULL CHECK (channel IN ('email', 'sms', 'voice')),
    attempts_left  INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    lookup_key     BLOB    NOT NULL,
    finished_at    INTEGER,
    revoked_at     INTEGER,
    client_ip      TEXT
);
-- Only open flows are looked up by key, so repeated requests cost the same as new ones.
CREATE INDEX recovery_flows_open_by_lookup ON recovery_flows (lookup_key)
    WHERE finished_at IS NULL AND revoked_at IS NULL;

-- The accounts a flow covers. code_hash is SHA-256 of the flow id and the code
-- sent to this account's destination (NULL for username reminders).
CREATE TABLE recovery_flow_accounts (
    flow_id     BLOB    NOT NULL REFERENCES recovery_flows (id) ON DELETE CASCADE,
    account_id  BLOB    NOT NULL REFERENCES portal_accounts (id),
    -- The flow's purpose, repeated so a newer request finds the older ones by account.
    purpose     TEXT    NOT NULL,
    recipient   TEXT    NOT NULL,
    code_hash   BLOB,
    revoked_at  INTEGER,
    PRIMARY KEY (flow_id, account_id)
);
CREATE INDEX recovery_flow_accounts_by_account ON recovery_flow_accounts (account_id);
-- A newer request revokes the live ones only: the index holds just those.
CREATE INDEX recovery_flow_accounts_live ON recovery_flow_accounts (account_id, purpose)
    WHERE revoked_at IS NULL;

-- Single-use secrets bound to one account and purpose: reset tokens (from links or
-- verified codes), staff-issued codes, activation codes, enrollment tokens.
CREATE TABLE account_tokens (
    hash           BLOB    PRIMARY KEY,
    purpose        TEXT    NOT NULL CHECK (purpose IN ('reset', 'staff_code', 'activation', 'enrollment')),
    account_id     BLOB    REFERENCES portal_accounts (id),
    patient_id     BLOB    REFERENCES patients (id),
    flow_id        BLOB    REFERENCES recovery_flows (id),
    attempts_left  INTEGER,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    used_at        INTEGER,
    revoked_at     INTEGER
);
CREATE INDEX account_tokens_by_account ON account_tokens (account_id, purpose);
CREATE INDEX account_tokens_by_patient ON account_tokens (patient_id, purpose);
-- Revocations touch unused tokens only.
CREATE INDEX account_tokens_open ON account_tokens (account_id, purpose)
    WHERE used_at IS NULL AND revoked_at IS NULL;
