-- tidemark:lint-ignore drop-column the application stopped reading it in release 2.3
ALTER TABLE users DROP COLUMN legacy_flag;
