ALTER TABLE users RENAME COLUMN email TO login;
