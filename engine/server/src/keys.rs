//! Key files of a repository.
//!
//! * TUF role keys (ed25519): `root-<i>.key`, `targets.key`,
//!   `snapshot.key`, `timestamp.key`. Each is a small JSON document,
//!   `{"keytype": "ed25519", "scheme": "ed25519", "public": HEX, "seed": HEX}`,
//!   where `seed` is the 32-byte secret seed and `public` the public key it
//!   derives (checked on load).
//! * Delegated roles' keys: `delegated/<role>-<i>.key`, same format.
//! * The CUP key (NIST P-256): `cup.pem`, PKCS#8 PEM, and its public half
//!   `cup.pub.pem`, SubjectPublicKeyInfo PEM.
//!
//! Secret key files are created with mode 0600 and never overwritten.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use serde::{Deserialize, Serialize};
use upkeep_core::cup::CupServer;
use upkeep_core::tuf::{Ed25519Signer, Signer};

use crate::error::ServerError;

/// File name of the CUP private key.
pub const CUP_KEY_FILE: &str = "cup.pem";
/// File name of the CUP public key.
pub const CUP_PUBLIC_KEY_FILE: &str = "cup.pub.pem";

/// The file name of a top-level role's key (`root` keys are numbered from 1).
pub fn role_key_file(role: &str, index: usize) -> String {
    if role == "root" {
        format!("root-{index}.key")
    } else {
        format!("{role}.key")
    }
}

/// The folder of the key directory holding delegated roles' keys.
pub const DELEGATED_KEYS_DIR: &str = "delegated";

/// The file of a delegated role's key, relative to the key directory:
/// `delegated/<role>-<index>.key` (numbered from 1).
pub fn delegated_key_file(role: &str, index: usize) -> std::path::PathBuf {
    Path::new(DELEGATED_KEYS_DIR).join(format!("{role}-{index}.key"))
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    keytype: String,
    scheme: String,
    public: String,
    seed: String,
}

/// 32 bytes from the operating system's random number generator.
pub fn random_seed() -> Result<[u8; 32], ServerError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| ServerError::Random(e.to_string()))?;
    Ok(seed)
}

/// Writes `bytes` to a new file (never replacing one), readable only by its
/// owner where the platform has modes.
pub fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), ServerError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path).map_err(|e| ServerError::io(path, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| ServerError::io(path, e))
}

/// Generates an ed25519 key, writes it to `path` and returns its signer.
pub fn generate_ed25519(path: &Path) -> Result<Ed25519Signer, ServerError> {
    let seed = random_seed()?;
    let signer = Ed25519Signer::from_seed(&seed);
    let file = KeyFile {
        keytype: "ed25519".into(),
        scheme: "ed25519".into(),
        public: signer.public_key().keyval.public.clone(),
        seed: hex::encode(seed),
    };
    let mut text =
        serde_json::to_vec_pretty(&file).map_err(|e| ServerError::key(path, e.to_string()))?;
    text.push(b'\n');
    write_secret(path, &text)?;
    Ok(signer)
}

/// Loads an ed25519 key written by [`generate_ed25519`].
pub fn load_ed25519(path: &Path) -> Result<Ed25519Signer, ServerError> {
    let bytes = std::fs::read(path).map_err(|e| ServerError::io(path, e))?;
    let file: KeyFile =
        serde_json::from_slice(&bytes).map_err(|e| ServerError::key(path, e.to_string()))?;
    if file.keytype != "ed25519" || file.scheme != "ed25519" {
        return Err(ServerError::key(
            path,
            format!("unsupported key type {}/{}", file.keytype, file.scheme),
        ));
    }
    let seed: [u8; 32] = hex::decode(file.seed.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| ServerError::key(path, "seed is not 64 hex digits"))?;
    let signer = Ed25519Signer::from_seed(&seed);
    if !signer
        .public_key()
        .keyval
        .public
        .eq_ignore_ascii_case(file.public.trim())
    {
        return Err(ServerError::key(
            path,
            "the public key does not match the seed",
        ));
    }
    Ok(signer)
}

/// Generates a P-256 CUP key pair, writing `cup.pem` (0600) and
/// `cup.pub.pem` into `dir`. Returns the public key PEM.
pub fn generate_cup_key(dir: &Path) -> Result<String, ServerError> {
    let key = loop {
        // A random 32-byte string is a valid P-256 scalar with overwhelming
        // probability; draw again in the rare other case.
        if let Ok(k) = p256::ecdsa::SigningKey::from_slice(&random_seed()?) {
            break k;
        }
    };
    let private_path = dir.join(CUP_KEY_FILE);
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| ServerError::key(&private_path, e.to_string()))?;
    let public_path = dir.join(CUP_PUBLIC_KEY_FILE);
    let public = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| ServerError::key(&public_path, e.to_string()))?;
    write_secret(&private_path, pem.as_bytes())?;
    upkeep_core::durable::write_atomic(&public_path, public.as_bytes())
        .map_err(|e| ServerError::io(&public_path, e))?;
    Ok(public)
}

/// Loads the CUP signing key `cup.pem` from `dir` under `key_id`.
pub fn load_cup_key(dir: &Path, key_id: u32) -> Result<CupServer, ServerError> {
    let path = dir.join(CUP_KEY_FILE);
    let pem = std::fs::read_to_string(&path).map_err(|e| ServerError::io(&path, e))?;
    CupServer::from_private_key_pem(key_id, &pem).map_err(|e| ServerError::key(&path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use upkeep_core::cup::CupClient;

    #[test]
    fn ed25519_keys_round_trip_and_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("targets.key");
        let made = generate_ed25519(&path).unwrap();
        let loaded = load_ed25519(&path).unwrap();
        assert_eq!(made.key_id(), loaded.key_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Never overwritten.
        assert!(generate_ed25519(&path).is_err());
    }

    #[test]
    fn a_tampered_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snapshot.key");
        generate_ed25519(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let other = Ed25519Signer::from_seed(&[9; 32]);
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["public"] = other.public_key().keyval.public.clone().into();
        std::fs::write(&path, v.to_string()).unwrap();
        let err = load_ed25519(&path).unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
    }

    #[test]
    fn cup_keys_sign_what_the_public_half_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let public = generate_cup_key(dir.path()).unwrap();
        let server = load_cup_key(dir.path(), 7).unwrap();
        let client = CupClient::from_public_key_pem(7, &public).unwrap();
        let request = client.sign_request(b"body").unwrap();
        let params = upkeep_core::cup::RequestParams::from_query(&request.query()).unwrap();
        let proof = server.sign_response(&params, b"body", b"answer").unwrap();
        client
            .verify_response(&request, b"answer", Some(&proof), None)
            .unwrap();
    }
}
