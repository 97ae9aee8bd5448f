-- An index on a table that already holds rows.
CREATE INDEX orders_user_id_idx ON orders (user_id);
