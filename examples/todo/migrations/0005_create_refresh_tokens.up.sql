CREATE TABLE refresh_tokens (
    token VARCHAR(64) PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX idx_refresh_tokens_user_id ON refresh_tokens (user_id);
