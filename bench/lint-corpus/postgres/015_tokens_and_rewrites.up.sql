ALTER TABLE sessions ADD COLUMN token uuid DEFAULT gen_random_uuid();
ALTER TABLE users ADD COLUMN updated_at timestamptz DEFAULT now();
ALTER TABLE users ALTER COLUMN login SET NOT NULL;
ALTER TABLE users ADD CONSTRAINT users_login_key UNIQUE (login);
