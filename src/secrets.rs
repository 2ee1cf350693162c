//! Encryption at rest for provider credentials that owners enter in `/setup`.
//!
//! XChaCha20-Poly1305 with a random 24-byte nonce per value; the guild id is the associated
//! data, so a blob copied to another guild's row does not decrypt. The 32-byte key comes
//! from `DOCOBO_SECRETS__KEY` (base64) or from a key file created on first run with mode
//! 0600. Losing the key loses the stored credentials (owners re-run `/setup`); it is not in
//! the database, so a leaked database backup does not leak credentials.

use std::io::Write as _;
use std::path::Path;

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use secrecy::{ExposeSecret, SecretString};

use crate::domain::{GuildId, PluginConfig};

const NONCE_LEN: usize = 24;
/// First byte of every blob: the format, so it can change later.
const VERSION: u8 = 1;

/// Errors from the credential box. Never contain key material or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error(
        "cannot read or create the key file {path}: {source}. Fix: make its folder writable by this user, or set DOCOBO_SECRETS__KEY"
    )]
    KeyFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the encryption key is invalid: {0}. Fix: it must be 32 random bytes, base64-encoded (e.g. `openssl rand -base64 32`)"
    )]
    BadKey(String),
    #[error(
        "stored credentials cannot be decrypted (wrong key, or the data was altered). Fix: restore the original key, or run /setup again"
    )]
    Decrypt,
}

/// Seals and opens credentials.
#[derive(Clone)]
pub struct CredentialBox {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for CredentialBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CredentialBox([REDACTED])")
    }
}

impl CredentialBox {
    /// From a base64 key (the environment) or the key file, created when missing.
    ///
    /// # Errors
    /// The key is not 32 bytes of base64, or the file cannot be read or created.
    pub fn load(key: Option<&SecretString>, key_file: &Path) -> Result<Self, SecretsError> {
        let bytes = match key {
            Some(key) => decode_key(key.expose_secret())?,
            None => read_or_create_key_file(key_file)?,
        };
        Ok(Self::from_key(&bytes))
    }

    /// From raw key bytes (tests).
    #[must_use]
    pub fn from_key(key: &[u8; 32]) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(key.into()),
        }
    }

    /// Encrypts a guild's plugin configuration.
    #[must_use]
    pub fn seal(&self, guild: GuildId, config: &PluginConfig) -> Vec<u8> {
        // Serializing a Vec of string pairs cannot fail.
        let plaintext = serde_json::to_vec(config).unwrap_or_default();
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let aad = guild.to_string();
        // Encryption fails only for inputs longer than 256 GiB.
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: &plaintext,
                    aad: aad.as_bytes(),
                },
            )
            .unwrap_or_default();
        let mut blob = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        blob.push(VERSION);
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ciphertext);
        blob
    }

    /// Decrypts what [`CredentialBox::seal`] produced for the same guild.
    ///
    /// # Errors
    /// Wrong key, wrong guild, or altered data.
    pub fn open(&self, guild: GuildId, blob: &[u8]) -> Result<PluginConfig, SecretsError> {
        if blob.len() < 1 + NONCE_LEN || blob[0] != VERSION {
            return Err(SecretsError::Decrypt);
        }
        let nonce = XNonce::from_slice(&blob[1..=NONCE_LEN]);
        let aad = guild.to_string();
        let plaintext = self
            .cipher
            .decrypt(
                nonce,
                Payload {
                    msg: &blob[1 + NONCE_LEN..],
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| SecretsError::Decrypt)?;
        serde_json::from_slice(&plaintext).map_err(|_| SecretsError::Decrypt)
    }
}

fn decode_key(text: &str) -> Result<[u8; 32], SecretsError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| SecretsError::BadKey("not base64".into()))?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| SecretsError::BadKey(format!("{} bytes instead of 32", bytes.len())))
}

fn read_or_create_key_file(path: &Path) -> Result<[u8; 32], SecretsError> {
    let err = |source| SecretsError::KeyFile {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => return decode_key(&text),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(err(e)),
        Err(_) => {}
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let key = XChaCha20Poly1305::generate_key(&mut OsRng);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut file) => {
            let text = base64::engine::general_purpose::STANDARD.encode(key);
            file.write_all(text.as_bytes())
                .and_then(|()| file.write_all(b"\n"))
                .and_then(|()| file.sync_all())
                .map_err(err)?;
            tracing::info!(path = %path.display(), "created the credential encryption key; back it up with the database");
            Ok(key.into())
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            decode_key(&std::fs::read_to_string(path).map_err(err)?)
        }
        Err(e) => Err(err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guild(n: u64) -> GuildId {
        GuildId::new(n).expect("id")
    }

    fn config() -> PluginConfig {
        vec![("access_token".into(), "polar_oat_secret".into())]
    }

    #[test]
    fn sealed_credentials_open_only_for_their_guild_and_key() {
        let boxed = CredentialBox::from_key(&[7; 32]);
        let blob = boxed.seal(guild(1), &config());
        assert!(!String::from_utf8_lossy(&blob).contains("polar_oat_secret"));
        assert_eq!(boxed.open(guild(1), &blob).expect("opens"), config());
        assert!(matches!(
            boxed.open(guild(2), &blob),
            Err(SecretsError::Decrypt)
        ));
        let other = CredentialBox::from_key(&[8; 32]);
        assert!(matches!(
            other.open(guild(1), &blob),
            Err(SecretsError::Decrypt)
        ));
        let mut altered = blob.clone();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert!(matches!(
            boxed.open(guild(1), &altered),
            Err(SecretsError::Decrypt)
        ));
        // Fresh nonce every time.
        assert_ne!(boxed.seal(guild(1), &config()), blob);
    }

    #[test]
    fn the_key_file_is_created_once_with_mode_0600_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys/docobo.key");
        let first = CredentialBox::load(None, &path).expect("created");
        let blob = first.seal(guild(1), &config());
        let second = CredentialBox::load(None, &path).expect("reused");
        assert_eq!(second.open(guild(1), &blob).expect("same key"), config());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }

    #[test]
    fn a_key_from_the_environment_must_be_32_base64_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let unused = dir.path().join("unused.key");
        let good = SecretString::from(base64::engine::general_purpose::STANDARD.encode([1u8; 32]));
        CredentialBox::load(Some(&good), &unused).expect("valid key");
        assert!(
            !unused.exists(),
            "no key file when the key comes from the environment"
        );
        for bad in ["not base64!!", "AAAA"] {
            let err = CredentialBox::load(Some(&SecretString::from(bad)), &unused).expect_err(bad);
            assert!(err.to_string().contains("Fix:"), "{err}");
            assert!(
                !err.to_string().contains(bad),
                "the key never appears in errors"
            );
        }
    }
}
