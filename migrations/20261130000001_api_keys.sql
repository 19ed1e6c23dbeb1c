-- The analysis API's keys (table from the first migration): when a key was last used
-- and who revoked it. Only a SHA-256 of each key is kept (key_hash): a key is 256
-- random bits, so a fast hash cannot be brute-forced, and checking it costs
-- microseconds per request where argon2 would cost tens of milliseconds.
ALTER TABLE api_keys
    ADD COLUMN last_used_at TIMESTAMPTZ,
    ADD COLUMN revoked_by BIGINT REFERENCES users (id),
    ADD CONSTRAINT api_keys_rate_positive CHECK (rate_limit_per_minute > 0),
    ADD CONSTRAINT api_keys_name_length CHECK (length(name) BETWEEN 1 AND 100);
