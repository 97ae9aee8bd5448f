-- Sign-in looks users up by email; two accounts must never share one.
CREATE UNIQUE INDEX idx_users_email ON users (email);
