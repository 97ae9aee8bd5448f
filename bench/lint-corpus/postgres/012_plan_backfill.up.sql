ALTER TABLE users ADD COLUMN plan text;
UPDATE users SET plan = 'free';
UPDATE orders SET total = round(total);
DELETE FROM sessions;
