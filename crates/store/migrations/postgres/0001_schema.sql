-- CareKey schema (PostgreSQL). Times are Unix milliseconds (UTC), as on SQLite, so
-- both backends share their queries; ids are UUIDs; secrets appear only as SHA-256 or Argon2id hashes.

CREATE TABLE org_policy (
    id          BIGINT  PRIMARY KEY CHECK (id = 1),
    document    TEXT    NOT NULL,
    updated_at  BIGINT  NOT NULL
);

CREATE TABLE patients (
    id                  UUID    PRIMARY KEY,
    mrn                 TEXT    NOT NULL UNIQUE,
    given_name          TEXT    NOT NULL,
    family_name         TEXT    NOT NULL,
    date_of_birth       TEXT    NOT NULL,
    postal_code         TEXT,
    preferred_language  TEXT,
    created_at          BIGINT  NOT NULL,
    updated_at          BIGINT  NOT NULL
);
CREATE INDEX patients_family_name ON patients (lower(family_name));
CREATE INDEX patients_date_of_birth ON patients (date_of_birth);

CREATE TABLE contacts (
    patient_id   UUID    NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
    kind         TEXT    NOT NULL CHECK (kind IN ('email', 'phone')),
    value        TEXT    NOT NULL,
    verified_by  TEXT    CHECK (verified_by IN ('code', 'staff')),
    verified_at  BIGINT ,
    updated_at   BIGINT  NOT NULL,
    PRIMARY KEY (patient_id, kind)
);
CREATE INDEX contacts_by_value ON contacts (kind, value);

CREATE TABLE portal_accounts (
    id                         UUID    PRIMARY KEY,
    patient_id                 UUID    NOT NULL UNIQUE REFERENCES patients (id),
    username                   TEXT    NOT NULL UNIQUE,
    password_hash              TEXT    NOT NULL,
    password_changed_at        BIGINT  NOT NULL,
    status                     TEXT    NOT NULL CHECK (status IN ('active', 'disabled')),
    disabled_reason            TEXT,
    failed_attempts            BIGINT  NOT NULL DEFAULT 0,
    failure_window_started_at  BIGINT ,
    locked_until               BIGINT ,
    lock_held                  BOOLEAN NOT NULL DEFAULT FALSE,
    consecutive_lockouts       BIGINT  NOT NULL DEFAULT 0,
    last_sign_in_at            BIGINT ,
    created_at                 BIGINT  NOT NULL
);

CREATE TABLE password_history (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id     UUID    NOT NULL REFERENCES portal_accounts (id) ON DELETE CASCADE,
    password_hash  TEXT    NOT NULL,
    set_at         BIGINT  NOT NULL
);
CREATE INDEX password_history_by_account ON password_history (account_id, set_at);

CREATE TABLE staff_users (
    id                 UUID    PRIMARY KEY,
    username           TEXT    NOT NULL UNIQUE,
    role               TEXT    NOT NULL CHECK (role IN ('front_desk', 'portal_admin', 'auditor')),
    password_hash      TEXT    NOT NULL,
    totp_secret        TEXT,
    totp_confirmed_at  BIGINT ,
    disabled           BOOLEAN NOT NULL DEFAULT FALSE,
    failed_attempts            BIGINT  NOT NULL DEFAULT 0,
    failure_window_started_at  BIGINT ,
    locked_until               BIGINT ,
    lock_held                  BOOLEAN NOT NULL DEFAULT FALSE,
    consecutive_lockouts       BIGINT  NOT NULL DEFAULT 0,
    created_at         BIGINT  NOT NULL
);

CREATE TABLE sessions (
    id_hash              BYTEA    PRIMARY KEY,
    owner_kind           TEXT    NOT NULL CHECK (owner_kind IN ('patient', 'staff')),
    account_id           UUID    REFERENCES portal_accounts (id),
    staff_id             UUID    REFERENCES staff_users (id),
    created_at           BIGINT  NOT NULL,
    last_seen_at         BIGINT  NOT NULL,
    idle_expires_at      BIGINT  NOT NULL,
    absolute_expires_at  BIGINT  NOT NULL,
    revoked_at           BIGINT ,
    ip                   TEXT,
    user_agent           TEXT,
    CHECK ((owner_kind = 'patient') = (account_id IS NOT NULL)),
    CHECK ((owner_kind = 'staff') = (staff_id IS NOT NULL))
);
CREATE INDEX sessions_by_account ON sessions (account_id) WHERE revoked_at IS NULL;
CREATE INDEX sessions_by_staff ON sessions (staff_id) WHERE revoked_at IS NULL;

-- A recovery request. account_id is NULL for a decoy flow (nothing matched), which
-- behaves like a real flow whose code is never right.
CREATE TABLE recovery_flows (
    id             UUID    PRIMARY KEY,
    account_id     UUID    REFERENCES portal_accounts (id),
    purpose        TEXT    NOT NULL CHECK (purpose IN ('password', 'username', 'contact')),
    channel        TEXT    NOT NULL CHECK (channel IN ('email', 'sms', 'voice')),
    code_hash      BYTEA,
    attempts_left  BIGINT  NOT NULL,
    created_at     BIGINT  NOT NULL,
    expires_at     BIGINT  NOT NULL,
    finished_at    BIGINT ,
    revoked_at     BIGINT ,
    client_ip      TEXT
);
CREATE INDEX recovery_flows_by_account ON recovery_flows (account_id, purpose);

-- Single-use secrets bound to one account and purpose: reset tokens (from links or
-- verified codes), staff-issued codes, activation codes, enrollment tokens.
CREATE TABLE account_tokens (
    hash           BYTEA    PRIMARY KEY,
    purpose        TEXT    NOT NULL CHECK (purpose IN ('reset', 'staff_code', 'activation', 'enrollment')),
    account_id     UUID    REFERENCES portal_accounts (id),
    patient_id     UUID    REFERENCES patients (id),
    flow_id        UUID    REFERENCES recovery_flows (id),
    attempts_left  BIGINT ,
    created_at     BIGINT  NOT NULL,
    expires_at     BIGINT  NOT NULL,
    used_at        BIGINT ,
    revoked_at     BIGINT 
);
CREATE INDEX account_tokens_by_account ON account_tokens (account_id, purpose);
CREATE INDEX account_tokens_by_patient ON account_tokens (patient_id, purpose);

CREATE TABLE outbox_messages (
    id               UUID    PRIMARY KEY,
    kind             TEXT    NOT NULL,
    channel          TEXT    NOT NULL CHECK (channel IN ('email', 'sms', 'voice')),
    recipient        TEXT    NOT NULL,
    language         TEXT    NOT NULL,
    patient_id       UUID    REFERENCES patients (id),
    payload          TEXT    NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN ('queued', 'sending', 'sent', 'delivered', 'failed', 'bounced')),
    attempts         BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT  NOT NULL,
    lease_until      BIGINT ,
    last_error       TEXT,
    provider_id      TEXT,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL
);
CREATE INDEX outbox_due ON outbox_messages (status, next_attempt_at);
CREATE INDEX outbox_by_patient ON outbox_messages (patient_id, created_at);

-- Fixed-window counters for rate limits, keyed on values that never depend on
-- whether an account exists (a normalised identifier, a client address).
CREATE TABLE rate_limits (
    key           TEXT    PRIMARY KEY,
    window_start  BIGINT  NOT NULL,
    count         BIGINT  NOT NULL
);

-- Append-only and hash-chained: each event's hash covers its fields and the
-- previous event's hash; audit_chain_head holds the last link.
CREATE TABLE audit_events (
    seq         BIGINT  PRIMARY KEY,
    at          BIGINT  NOT NULL,
    actor_kind  TEXT    NOT NULL,
    actor_id    UUID,
    action      TEXT    NOT NULL,
    account_id  UUID,
    patient_id  UUID,
    ip          TEXT,
    outcome     TEXT    NOT NULL,
    details     TEXT    NOT NULL,
    prev_hash   BYTEA    NOT NULL,
    hash        BYTEA    NOT NULL
);
CREATE INDEX audit_by_patient ON audit_events (patient_id, at);
CREATE INDEX audit_by_action ON audit_events (action, at);

CREATE TABLE audit_chain_head (
    id    BIGINT  PRIMARY KEY CHECK (id = 1),
    seq   BIGINT  NOT NULL,
    hash  BYTEA    NOT NULL
);
INSERT INTO audit_chain_head (id, seq, hash) VALUES (1, 0, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea);
