-- One audited change's append to the audit chain, as CareKey makes it on
-- PostgreSQL (crates/store/src/shared.rs, append_all_in): the head locked,
-- the event inserted after it, the head moved, the commit. Run by pgbench;
-- see docs/BENCHMARKS.md, "The audit chain's ceiling on PostgreSQL".
BEGIN;
SELECT seq, hash FROM audit_chain_head WHERE id = 1 FOR UPDATE;
INSERT INTO audit_events (seq, at, actor_kind, actor_id, action, account_id, patient_id, ip,
    outcome, details, prev_hash, hash)
  SELECT seq + 1, (extract(epoch FROM clock_timestamp()) * 1000)::bigint, 'patient', NULL,
    'sign_in', NULL, NULL, '127.0.0.1', 'success', '{}', hash, sha256(hash || '\x01'::bytea)
  FROM audit_chain_head WHERE id = 1;
UPDATE audit_chain_head SET seq = seq + 1, hash = sha256(hash || '\x01'::bytea) WHERE id = 1;
COMMIT;
