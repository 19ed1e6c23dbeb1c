-- Browsers that logged into an account before (a cookie holds a random token; only its
-- SHA-256 is kept): their login attempts are throttled on their own, so a guesser
-- elsewhere cannot hold the owner up (web::login_gate).
CREATE TABLE known_devices (
    id            BIGSERIAL PRIMARY KEY,
    token_hash    BYTEA NOT NULL UNIQUE,
    user_id       BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_login_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX known_devices_user_idx ON known_devices(user_id);
