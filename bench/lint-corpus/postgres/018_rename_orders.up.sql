ALTER TABLE orders RENAME TO purchases;
CREATE TABLE order_notes (id bigserial PRIMARY KEY, note text);
