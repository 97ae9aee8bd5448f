TRUNCATE sessions;
DROP TABLE IF EXISTS old_audit_log;
