-- The staff console: a TOTP code works once (its time step is remembered),
-- staff sign-ins are stamped, and patients are found by given name too.
ALTER TABLE staff_users ADD COLUMN totp_last_step BIGINT;
ALTER TABLE staff_users ADD COLUMN last_sign_in_at BIGINT;
CREATE INDEX patients_given_name ON patients (lower(given_name));
CREATE INDEX patients_family_name_lower ON patients (lower(family_name));
