//! Encryption at rest for client secrets and OAuth tokens.
//!
//! XChaCha20-Poly1305 with a random 24-byte nonce per value. A stored value is
//! `version(1) ‖ nonce(24) ‖ ciphertext+tag`. The associated data names the row and column the
//! value belongs to, so a ciphertext copied into another row or column fails to decrypt.

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};

pub const KEY_LEN: usize = 32;
const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;

/// Bytes that must never be printed: `Debug` shows only their length.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBytes([redacted; {}])", self.0.len())
    }
}

/// A secret string (client secret, token): redacted in `Debug`, exposed only on purpose.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// The last four characters at most, for the admin to recognise which secret is stored.
    pub fn hint(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        let tail: String = chars[chars.len().saturating_sub(4)..].iter().collect();
        if chars.len() <= 4 {
            "••••".to_string()
        } else {
            format!("••••{tail}")
        }
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretString([redacted])")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("encryption key must be {KEY_LEN} bytes")]
    BadKey,
    #[error("stored value cannot be decrypted (wrong key, or value moved between rows)")]
    Decrypt,
    #[error("encryption failed")]
    Encrypt,
}

#[derive(Clone)]
pub struct Cipher {
    aead: XChaCha20Poly1305,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher([redacted])")
    }
}

impl Cipher {
    pub fn new(key: &SecretBytes) -> Result<Self, CryptoError> {
        if key.expose().len() != KEY_LEN {
            return Err(CryptoError::BadKey);
        }
        Ok(Self {
            aead: XChaCha20Poly1305::new(Key::from_slice(key.expose())),
        })
    }

    pub fn encrypt(&self, plaintext: &[u8], aad: &str) -> Result<Vec<u8>, CryptoError> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ct = self
            .aead
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Encrypt)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    pub fn decrypt(&self, stored: &[u8], aad: &str) -> Result<Vec<u8>, CryptoError> {
        if stored.len() < 1 + NONCE_LEN || stored[0] != VERSION {
            return Err(CryptoError::Decrypt);
        }
        let nonce = XNonce::from_slice(&stored[1..1 + NONCE_LEN]);
        self.aead
            .decrypt(
                nonce,
                Payload {
                    msg: &stored[1 + NONCE_LEN..],
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Decrypt)
    }

    pub fn encrypt_str(&self, s: &SecretString, aad: &str) -> Result<Vec<u8>, CryptoError> {
        self.encrypt(s.expose().as_bytes(), aad)
    }

    pub fn decrypt_str(&self, stored: &[u8], aad: &str) -> Result<SecretString, CryptoError> {
        let bytes = self.decrypt(stored, aad)?;
        String::from_utf8(bytes)
            .map(SecretString::new)
            .map_err(|_| CryptoError::Decrypt)
    }
}

/// A random URL-safe token with `bytes` bytes of entropy (OAuth state, ids).
pub fn random_token(bytes: usize) -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// SHA-256 hex digest: the OAuth state is stored hashed, so a database read cannot replay it.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(data);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher() -> Cipher {
        Cipher::new(&SecretBytes::new(vec![7u8; 32])).expect("key")
    }

    #[test]
    fn round_trip_and_fresh_nonce() {
        let c = cipher();
        let a = c
            .encrypt(b"refresh-token", "mail_accounts:1:refresh")
            .expect("enc");
        let b = c
            .encrypt(b"refresh-token", "mail_accounts:1:refresh")
            .expect("enc");
        assert_ne!(a, b, "each value gets its own nonce");
        assert!(!a.windows(13).any(|w| w == b"refresh-token"));
        assert_eq!(
            c.decrypt(&a, "mail_accounts:1:refresh").expect("dec"),
            b"refresh-token"
        );
    }

    #[test]
    fn wrong_row_wrong_key_or_tamper_fails() {
        let c = cipher();
        let mut a = c.encrypt(b"secret", "row:1").expect("enc");
        assert!(c.decrypt(&a, "row:2").is_err());
        let other = Cipher::new(&SecretBytes::new(vec![8u8; 32])).expect("key");
        assert!(other.decrypt(&a, "row:1").is_err());
        let last = a.len() - 1;
        a[last] ^= 1;
        assert!(c.decrypt(&a, "row:1").is_err());
        assert!(c.decrypt(b"short", "row:1").is_err());
    }

    #[test]
    fn secrets_do_not_print() {
        let s = SecretString::new("GOCSPX-abcdef1234");
        assert!(!format!("{s:?}").contains("GOCSPX"));
        assert_eq!(s.hint(), "••••1234");
        assert_eq!(SecretString::new("abc").hint(), "••••");
        assert!(Cipher::new(&SecretBytes::new(vec![1; 16])).is_err());
    }
}
