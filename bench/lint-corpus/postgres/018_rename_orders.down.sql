DROP TABLE order_notes;
