CREATE TABLE users (
  id bigserial PRIMARY KEY,
  email text NOT NULL,
  legacy_flag boolean,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (email);
