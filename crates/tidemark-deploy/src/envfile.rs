//! The env file of a release: its SHA-256 and, per key, a salted hash of the value, so that a
//! deploy can say *which* keys changed without any value leaving the file.

use std::collections::BTreeMap;
use std::path::Path;

use sha2::{Digest, Sha256};
use tidemark::{Error, Result};

#[derive(Debug, Clone, Default)]
pub struct EnvFile {
    pub sha256: String,
    /// Key → salted hash of its value.
    pub keys: BTreeMap<String, String>,
    pub salt: String,
}

/// `KEY=VALUE` lines as dotenv and docker compose read them (comments, blank lines and an
/// `export ` prefix allowed; quotes around the value are part of what is hashed).
pub fn parse_keys(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let l = l.strip_prefix("export ").unwrap_or(l);
            let (k, v) = l.split_once('=')?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

fn salted(salt: &str, key: &str, value: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update([0]);
    h.update(key.as_bytes());
    h.update([0]);
    h.update(value.as_bytes());
    hex::encode(h.finalize())
}

pub fn new_salt() -> String {
    use rand::Rng;
    let bytes: [u8; 16] = rand::rng().random();
    hex::encode(bytes)
}

impl EnvFile {
    pub fn read(path: &Path, salt: &str) -> Result<EnvFile> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let text = String::from_utf8_lossy(&bytes);
        Ok(EnvFile {
            sha256: hex::encode(Sha256::digest(&bytes)),
            keys: parse_keys(&text)
                .into_iter()
                .map(|(k, v)| {
                    let h = salted(salt, &k, &v);
                    (k, h)
                })
                .collect(),
            salt: salt.to_string(),
        })
    }

    /// Keys added, removed or whose value changed since `before` (hashed with its own salt).
    pub fn changed_keys(
        path: &Path,
        before_keys: &BTreeMap<String, String>,
        before_salt: &str,
    ) -> Result<Vec<String>> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let now = parse_keys(&String::from_utf8_lossy(&bytes));
        let mut out = Vec::new();
        for (k, v) in &now {
            match before_keys.get(k) {
                Some(h) if *h == salted(before_salt, k, v) => {}
                _ => out.push(k.clone()),
            }
        }
        for k in before_keys.keys() {
            if !now.contains_key(k) {
                out.push(k.clone());
            }
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_keys_are_named_without_values() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(".env");
        std::fs::write(&p, "A=1\n# c\nexport B=two\nC=3\n").unwrap();
        let before = EnvFile::read(&p, "s1").unwrap();
        assert!(!before.keys.values().any(|h| h.contains("two")));
        std::fs::write(&p, "A=1\nB=three\nD=4\n").unwrap();
        let after = EnvFile::read(&p, "s2").unwrap();
        assert_ne!(before.sha256, after.sha256);
        let changed = EnvFile::changed_keys(&p, &before.keys, &before.salt).unwrap();
        assert_eq!(changed, ["B", "C", "D"]);
    }
}
