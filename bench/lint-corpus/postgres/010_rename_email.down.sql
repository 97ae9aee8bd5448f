ALTER TABLE users RENAME COLUMN login TO email;
