CREATE TABLE roles (
    id INTEGER PRIMARY KEY,
    name VARCHAR(50) NOT NULL UNIQUE
);
INSERT INTO roles (id, name) VALUES (1, 'member'), (2, 'admin');
ALTER TABLE users ADD COLUMN role_id INTEGER NOT NULL DEFAULT 1 REFERENCES roles (id);
