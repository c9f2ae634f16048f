//! Public keys, signature verification, key ids and (repository side)
//! ed25519 signing.
//!
//! Verification accepts:
//!
//! | `keytype` | `scheme` | `keyval.public` | signature |
//! |---|---|---|---|
//! | `ed25519` | `ed25519` | 64 hex digits | 128 hex digits |
//! | `rsa` | `rsassa-pss-sha256` | PEM `PUBLIC KEY` (SPKI) | hex, PSS salt = digest length |
//! | `rsa` | `rsa-pkcs1v15-sha256` | PEM `PUBLIC KEY` (SPKI) | hex |
//! | `ecdsa`, `ecdsa-sha2-nistp256` | `ecdsa-sha2-nistp256` | PEM SPKI or hex SEC1 point | hex DER |
//!
//! Any other combination parses (so metadata that merely lists such a key
//! still loads) but never counts toward a threshold; when a threshold is
//! missed because of it the error is [`TufError::UnsupportedKeyType`].
//! Signing, for repositories built in code, is ed25519 only.

use std::collections::BTreeMap;

use ed25519_dalek::Signer as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::tuf::cjson;
use crate::tuf::error::TufError;

/// A public key as it appears in root or targets metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key {
    /// The key type, e.g. `ed25519`.
    pub keytype: String,
    /// The signature scheme, e.g. `ed25519`.
    pub scheme: String,
    /// The key value.
    pub keyval: KeyVal,
    /// Fields this client does not know; kept for signing and hashing.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

/// The `keyval` object of a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyVal {
    /// The public key, encoded as its key type says.
    pub public: String,
    /// Fields this client does not know.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

/// Whether a signature verified, and if not, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The signature is valid.
    Valid,
    /// The signature does not verify (or is malformed).
    Invalid,
    /// The key type or scheme is not supported.
    Unsupported,
}

impl Key {
    /// An ed25519 key from its 32 public bytes.
    pub fn ed25519(public: &[u8; 32]) -> Key {
        Key {
            keytype: "ed25519".into(),
            scheme: "ed25519".into(),
            keyval: KeyVal {
                public: hex::encode(public),
                unrecognized: BTreeMap::new(),
            },
            unrecognized: BTreeMap::new(),
        }
    }

    /// The key id: the hex SHA-256 of the key's canonical JSON.
    pub fn key_id(&self) -> Result<String, TufError> {
        let v = serde_json::to_value(self).map_err(|e| TufError::malformed("key", e))?;
        let c = cjson::to_canonical(&v).map_err(|e| TufError::malformed("key", e))?;
        Ok(hex::encode(Sha256::digest(&c)))
    }

    /// Whether this key type and scheme can be verified by this client.
    pub fn is_supported(&self) -> bool {
        matches!(
            (self.keytype.as_str(), self.scheme.as_str()),
            ("ed25519", "ed25519")
                | ("rsa", "rsassa-pss-sha256")
                | ("rsa", "rsa-pkcs1v15-sha256")
                | ("ecdsa", "ecdsa-sha2-nistp256")
                | ("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256")
        )
    }

    /// Verifies the hex signature `sig_hex` over `msg`.
    pub fn verify(&self, msg: &[u8], sig_hex: &str) -> Verdict {
        if !self.is_supported() {
            return Verdict::Unsupported;
        }
        let Ok(sig) = hex::decode(sig_hex) else {
            return Verdict::Invalid;
        };
        let ok = match (self.keytype.as_str(), self.scheme.as_str()) {
            ("ed25519", _) => verify_ed25519(&self.keyval.public, msg, &sig),
            ("rsa", "rsassa-pss-sha256") => verify_rsa(&self.keyval.public, msg, &sig, true),
            ("rsa", _) => verify_rsa(&self.keyval.public, msg, &sig, false),
            _ => verify_ecdsa(&self.keyval.public, msg, &sig),
        };
        if ok { Verdict::Valid } else { Verdict::Invalid }
    }
}

fn verify_ed25519(public_hex: &str, msg: &[u8], sig: &[u8]) -> bool {
    let Ok(public) = hex::decode(public_hex) else {
        return false;
    };
    let Ok(public): Result<[u8; 32], _> = public.try_into() else {
        return false;
    };
    let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&public) else {
        return false;
    };
    let Ok(sig) = ed25519_dalek::Signature::from_slice(sig) else {
        return false;
    };
    key.verify_strict(msg, &sig).is_ok()
}

fn verify_rsa(public_pem: &str, msg: &[u8], sig: &[u8], pss: bool) -> bool {
    use rsa::pkcs8::DecodePublicKey;
    use rsa::signature::Verifier;
    let Ok(key) = rsa::RsaPublicKey::from_public_key_pem(public_pem) else {
        return false;
    };
    if pss {
        let Ok(sig) = rsa::pss::Signature::try_from(sig) else {
            return false;
        };
        rsa::pss::VerifyingKey::<Sha256>::new(key)
            .verify(msg, &sig)
            .is_ok()
    } else {
        let Ok(sig) = rsa::pkcs1v15::Signature::try_from(sig) else {
            return false;
        };
        rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key)
            .verify(msg, &sig)
            .is_ok()
    }
}

fn verify_ecdsa(public: &str, msg: &[u8], sig: &[u8]) -> bool {
    use p256::ecdsa::signature::Verifier;
    use p256::pkcs8::DecodePublicKey;
    let key = if public.trim_start().starts_with("-----BEGIN") {
        p256::ecdsa::VerifyingKey::from_public_key_pem(public).ok()
    } else {
        hex::decode(public)
            .ok()
            .and_then(|b| p256::ecdsa::VerifyingKey::from_sec1_bytes(&b).ok())
    };
    let Some(key) = key else { return false };
    let Ok(sig) = p256::ecdsa::Signature::from_der(sig) else {
        return false;
    };
    key.verify(msg, &sig).is_ok()
}

/// Something that signs metadata (repository side).
pub trait Signer {
    /// The public key whose signatures this signer makes.
    fn public_key(&self) -> &Key;
    /// Signs `msg`, returning the raw signature bytes.
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, TufError>;
}

/// An ed25519 signing key.
#[derive(Clone)]
pub struct Ed25519Signer {
    key: ed25519_dalek::SigningKey,
    public: Key,
    key_id: String,
}

impl std::fmt::Debug for Ed25519Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ed25519Signer")
            .field("public", &self.public.keyval.public)
            .finish()
    }
}

impl Ed25519Signer {
    /// A signer from a 32-byte secret seed.
    pub fn from_seed(seed: &[u8; 32]) -> Ed25519Signer {
        let key = ed25519_dalek::SigningKey::from_bytes(seed);
        let bytes = key.verifying_key().to_bytes();
        let public = Key::ed25519(&bytes);
        // Canonical JSON of a key made only of strings cannot fail.
        let key_id = public.key_id().unwrap_or_else(|_| hex::encode(bytes));
        Ed25519Signer {
            key,
            public,
            key_id,
        }
    }

    /// The key id of the public key.
    pub fn key_id(&self) -> String {
        self.key_id.clone()
    }
}

impl Signer for Ed25519Signer {
    fn public_key(&self) -> &Key {
        &self.public
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, TufError> {
        Ok(self.key.sign(msg).to_bytes().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ed25519_sign_and_verify() {
        let s = Ed25519Signer::from_seed(&[7; 32]);
        let sig = hex::encode(s.sign(b"hello").unwrap());
        assert_eq!(s.public_key().verify(b"hello", &sig), Verdict::Valid);
        assert_eq!(s.public_key().verify(b"hellO", &sig), Verdict::Invalid);
        assert_eq!(s.public_key().verify(b"hello", "zz"), Verdict::Invalid);
        assert_eq!(s.key_id().len(), 64);
    }

    #[test]
    fn unknown_key_types_are_unsupported() {
        let mut k = Key::ed25519(&[1; 32]);
        k.keytype = "dsa".into();
        assert_eq!(k.verify(b"x", "00"), Verdict::Unsupported);
    }
}
