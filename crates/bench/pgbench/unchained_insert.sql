-- The same event inserted and committed without the chain: no head to lock,
-- its number from a sequence. What PostgreSQL takes when commits need not
-- wait for one another. Needs: CREATE SEQUENCE bench_unchained START 1000000000;
BEGIN;
INSERT INTO audit_events (seq, at, actor_kind, actor_id, action, account_id, patient_id, ip,
    outcome, details, prev_hash, hash)
  VALUES (nextval('bench_unchained'), (extract(epoch FROM clock_timestamp()) * 1000)::bigint,
    'patient', NULL, 'sign_in', NULL, NULL, '127.0.0.1', 'success', '{}', '\x00'::bytea,
    '\x00'::bytea);
COMMIT;
