DROP TABLE sessions;
DROP TABLE orders;
