//! Secret keys and key ids given to an engine, validated where they are made.
//!
//! An empty HMAC key lets anyone compute a valid MAC, so an empty approval key would
//! let anyone forge grants and an empty signing key would make signatures worthless
//! (§9a). A [`Key`] therefore cannot be empty, and a [`KeyId`] (written into every
//! signed record) is a name like any other: 1–256 bytes, no control characters, so a
//! NUL can never be cut off in one binding and kept in another.

use std::fmt;

/// A configuration value that is refused (code `config_invalid`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The option, as the core names it (`approval_key`, `signing_key_id`, …).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    /// An error about `field`.
    pub fn new(field: &str, message: impl Into<String>) -> ConfigError {
        ConfigError { field: field.to_owned(), message: message.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// HMAC key bytes (approval grants, record signatures); never empty.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(Vec<u8>);

impl Key {
    /// The key for option `field`; an empty key is refused.
    pub fn new(field: &str, bytes: impl Into<Vec<u8>>) -> Result<Key, ConfigError> {
        let bytes = bytes.into();
        if bytes.is_empty() {
            return Err(ConfigError::new(
                field,
                format!("`{field}` is empty; an empty HMAC key lets anyone forge what it protects"),
            ));
        }
        Ok(Key(bytes))
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({} bytes)", self.0.len())
    }
}

/// The `kid` written into signed records: 1–256 bytes, no control characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyId(String);

impl KeyId {
    /// The key id for option `field`.
    pub fn new(field: &str, id: impl Into<String>) -> Result<KeyId, ConfigError> {
        let id = id.into();
        crate::request::check_name(field, &id).map_err(|e| ConfigError::new(field, e.message))?;
        Ok(KeyId(id))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_keys_and_bad_ids_are_refused() {
        assert_eq!(Key::new("approval_key", Vec::new()).unwrap_err().field, "approval_key");
        assert_eq!(Key::new("signing_key", b"k".to_vec()).unwrap().as_bytes(), b"k");
        assert!(KeyId::new("signing_key_id", "ops\0evil").is_err());
        assert!(KeyId::new("signing_key_id", "").is_err());
        assert_eq!(KeyId::new("signing_key_id", "ops-2026").unwrap().as_str(), "ops-2026");
        assert_eq!(format!("{:?}", Key::new("k", b"secret".to_vec()).unwrap()), "Key(6 bytes)");
    }
}
