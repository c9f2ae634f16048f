//! CUP-ECDSA: the Client Update Protocol, version 2 ("cup2"), with ECDSA
//! over NIST P-256 and SHA-256.
//!
//! CUP lets a client trust an update response even when the transport is
//! untrusted: the server signs the request and the response together with a
//! fresh client nonce, and the client checks that signature against a pinned
//! public key.
//!
//! The wire formats follow Chromium's
//! `components/client_update_protocol/ecdsa.cc` (Copyright 2016 The Chromium
//! Authors, BSD-3-Clause), so an upkeep client talks to any CUP-ECDSA Omaha
//! server and an upkeep server answers Chromium-style clients:
//!
//! * the client adds `cup2key=<key id>:<nonce>` and
//!   `cup2hreq=<lower-case hex SHA-256 of the request body>` to the request
//!   URL's query. The nonce is 32 random bytes in base64url without padding;
//! * the server answers with the proof `<hex DER ECDSA signature>:<hex SHA-256
//!   of the request body it observed>` in `X-Cup-Server-Proof` and/or `ETag`
//!   (an ETag may be weak, `W/"…"`, and may be quoted);
//! * the signature is ECDSA-P256-SHA256 over the 32 bytes
//!   `SHA-256(SHA-256(request) ‖ SHA-256(response) ‖ "<key id>:<nonce>")`,
//!   so the ECDSA input is the SHA-256 of that digest.
//!
//! See `docs/cup.md` for the whole scheme and what every error means.
//!
//! ```
//! use upkeep_core::cup::{CupClient, CupServer, RequestParams};
//! # use p256::ecdsa::SigningKey;
//! # let signing_key = SigningKey::from_slice(&[7u8; 32]).unwrap();
//! let server = CupServer::new(3, signing_key);
//! let client = CupClient::new(3, *server.verifying_key());
//!
//! // Client: sign the request, send `request.query()` with it.
//! let request = client.sign_request(b"{\"request\":{}}").unwrap();
//! // Server: read the query, sign the response.
//! let params = RequestParams::from_query(&request.query()).unwrap();
//! let proof = server
//!     .sign_response(&params, b"{\"request\":{}}", b"{\"response\":{}}")
//!     .unwrap();
//! // Client: check the proof it got in `X-Cup-Server-Proof`.
//! client
//!     .verify_response(&request, b"{\"response\":{}}", Some(&proof), None)
//!     .unwrap();
//! ```

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _};
use sha2::{Digest as _, Sha256};

/// The query parameter that carries `<key id>:<nonce>`.
pub const CUP2KEY_PARAM: &str = "cup2key";
/// The query parameter that carries the hex SHA-256 of the request body.
pub const CUP2HREQ_PARAM: &str = "cup2hreq";
/// The response header that carries the proof; preferred over [`ETAG_HEADER`].
pub const SERVER_PROOF_HEADER: &str = "X-Cup-Server-Proof";
/// The response header that carries the proof when [`SERVER_PROOF_HEADER`] is
/// absent or empty.
pub const ETAG_HEADER: &str = "ETag";

/// Length in bytes of the random nonce a client draws for each request.
pub const NONCE_BYTES: usize = 32;
/// The longest nonce accepted, in characters. A random nonce is 43.
pub const MAX_NONCE_LEN: usize = 256;
/// Shortest DER ECDSA signature accepted in a proof (as Chromium).
pub const MIN_SIGNATURE_LEN: usize = 8;
/// Longest DER ECDSA signature accepted in a proof (as Chromium).
pub const MAX_SIGNATURE_LEN: usize = 72;

/// A SHA-256 digest.
pub type Sha256Digest = [u8; 32];

/// Why a CUP operation failed. Each cause has its own variant so callers and
/// logs can tell an attack from a misconfiguration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CupError {
    /// The response carried no proof: both `X-Cup-Server-Proof` and `ETag`
    /// were absent or empty.
    #[error("the response carries no CUP proof (no X-Cup-Server-Proof or ETag header)")]
    MissingProof,
    /// The proof is not `<hex DER signature>:<hex SHA-256>`.
    #[error("the CUP proof is malformed: {0}")]
    MalformedProof(String),
    /// The request hash the server observed differs from the hash of the
    /// request that was sent: the request was changed on its way.
    #[error(
        "the server observed a different request (request hash {observed}, expected {expected})"
    )]
    RequestHashMismatch {
        /// Hex SHA-256 of the request that was sent.
        expected: String,
        /// Hex SHA-256 the other side reports or computed.
        observed: String,
    },
    /// The signature does not verify under the pinned key: the response was
    /// changed, answers another request (another nonce or key id), or was
    /// signed by another key.
    #[error(
        "the CUP signature does not verify: the response or its proof was altered, replayed or signed by another key"
    )]
    BadSignature,
    /// The response body is empty; CUP never accepts an empty response.
    #[error("the response body is empty")]
    EmptyResponse,
    /// A `cup2key` value is not `<decimal key id>:<nonce>`.
    #[error("cup2key {value:?} is malformed: {reason}")]
    MalformedCup2Key {
        /// The value as received.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A nonce is empty, too long, or uses characters outside the base64url
    /// alphabet (`A-Z a-z 0-9 - _`).
    #[error("nonce {nonce:?} is invalid: {reason}")]
    InvalidNonce {
        /// The nonce as given.
        nonce: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `cup2hreq` value is not 64 hex digits.
    #[error("cup2hreq {0:?} is not a hex SHA-256 digest")]
    MalformedRequestHash(String),
    /// The request names a key id other than the one held.
    #[error("the request uses CUP key id {found}, but key id {expected} is the one held")]
    KeyIdMismatch {
        /// The key id held (pinned by the client, owned by the server).
        expected: u32,
        /// The key id the request names.
        found: u32,
    },
    /// The request query carries no `cup2key`.
    #[error("the request query has no cup2key parameter")]
    MissingCup2Key,
    /// A key could not be loaded.
    #[error("cannot load the CUP key: {0}")]
    InvalidKey(String),
    /// The system's random number generator failed.
    #[error("cannot draw a random CUP nonce: {0}")]
    Random(String),
    /// Signing failed.
    #[error("cannot sign the CUP response: {0}")]
    Signing(String),
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> Sha256Digest {
    Sha256::digest(data).into()
}

/// The 32-byte digest that the server signs:
/// `SHA-256(request_hash ‖ SHA-256(response_body) ‖ cup2key)`.
///
/// The ECDSA-SHA256 signature is computed over these 32 bytes (so ECDSA hashes
/// them once more).
pub fn signed_digest(
    request_hash: &Sha256Digest,
    response_body: &[u8],
    cup2key: &str,
) -> Sha256Digest {
    let response_hash = sha256(response_body);
    let mut hasher = Sha256::new();
    hasher.update(request_hash);
    hasher.update(response_hash);
    hasher.update(cup2key.as_bytes());
    hasher.finalize().into()
}

/// Checks that `nonce` is usable in a `cup2key`: 1 to [`MAX_NONCE_LEN`]
/// characters of the base64url alphabet. Decimal nonces (as some test
/// servers use) are a subset and pass.
pub fn validate_nonce(nonce: &str) -> Result<(), CupError> {
    let invalid = |reason: &str| CupError::InvalidNonce {
        nonce: nonce.to_owned(),
        reason: reason.to_owned(),
    };
    if nonce.is_empty() {
        return Err(invalid("it is empty"));
    }
    if nonce.len() > MAX_NONCE_LEN {
        return Err(invalid(&format!(
            "it is longer than {MAX_NONCE_LEN} characters"
        )));
    }
    if let Some(c) = nonce
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(invalid(&format!(
            "character {c:?} is outside the base64url alphabet"
        )));
    }
    Ok(())
}

/// A `cup2key` value: the key id and the nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cup2Key {
    key_id: u32,
    nonce: String,
}

impl Cup2Key {
    /// Builds a `cup2key` from its parts, checking the nonce.
    pub fn new(key_id: u32, nonce: &str) -> Result<Self, CupError> {
        validate_nonce(nonce)?;
        Ok(Self {
            key_id,
            nonce: nonce.to_owned(),
        })
    }

    /// Parses `<decimal key id>:<nonce>`.
    pub fn parse(value: &str) -> Result<Self, CupError> {
        let malformed = |reason: &str| CupError::MalformedCup2Key {
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let (id, nonce) = value
            .split_once(':')
            .ok_or_else(|| malformed("there is no ':' between key id and nonce"))?;
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed("the key id is not a decimal number"));
        }
        let key_id = id
            .parse::<u32>()
            .map_err(|_| malformed("the key id is larger than 4294967295"))?;
        Self::new(key_id, nonce)
    }

    /// The key id.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The nonce.
    pub fn nonce(&self) -> &str {
        &self.nonce
    }
}

impl fmt::Display for Cup2Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.key_id, self.nonce)
    }
}

/// A server proof: the DER ECDSA signature and the request hash the server
/// observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerProof {
    signature: Signature,
    observed_request_hash: Sha256Digest,
}

impl ServerProof {
    /// Parses a proof header value: `S:H`, optionally quoted (`"S:H"`) and
    /// optionally weak (`W/"S:H"`), where `S` is the hex DER ECDSA signature
    /// (8 to 72 bytes) and `H` the hex SHA-256 of the request the server
    /// observed. Surrounding spaces and tabs are ignored.
    pub fn parse(header_value: &str) -> Result<Self, CupError> {
        let malformed = |reason: &str| CupError::MalformedProof(reason.to_owned());
        let mut value = header_value.trim_matches([' ', '\t']);
        if value.is_empty() {
            return Err(CupError::MissingProof);
        }
        value = value.strip_prefix("W/").unwrap_or(value);
        if value.len() >= 2 && value.starts_with('"') && value.ends_with('"') {
            value = &value[1..value.len() - 1];
        }
        let (sig_hex, hash_hex) = value
            .split_once(':')
            .ok_or_else(|| malformed("there is no ':' between signature and request hash"))?;
        if sig_hex.is_empty() {
            return Err(malformed("the signature is empty"));
        }
        if hash_hex.is_empty() {
            return Err(malformed("the request hash is empty"));
        }
        let der = hex::decode(sig_hex)
            .map_err(|e| malformed(&format!("the signature is not hex: {e}")))?;
        if !(MIN_SIGNATURE_LEN..=MAX_SIGNATURE_LEN).contains(&der.len()) {
            return Err(malformed(&format!(
                "the signature is {} bytes; a DER ECDSA signature has {MIN_SIGNATURE_LEN} to {MAX_SIGNATURE_LEN}",
                der.len()
            )));
        }
        let signature = Signature::from_der(&der)
            .map_err(|_| malformed("the signature is not a DER-encoded P-256 ECDSA signature"))?;
        let hash = hex::decode(hash_hex)
            .map_err(|e| malformed(&format!("the request hash is not hex: {e}")))?;
        let observed_request_hash: Sha256Digest = hash.as_slice().try_into().map_err(|_| {
            malformed(&format!(
                "the request hash is {} bytes; a SHA-256 digest has 32",
                hash.len()
            ))
        })?;
        Ok(Self {
            signature,
            observed_request_hash,
        })
    }

    /// The ECDSA signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The SHA-256 of the request body as the server observed it.
    pub fn observed_request_hash(&self) -> &Sha256Digest {
        &self.observed_request_hash
    }
}

impl fmt::Display for ServerProof {
    /// The canonical form: lower-case hex, unquoted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let der = self.signature.to_der();
        let mut text = String::with_capacity(2 * (der.len() + 32) + 1);
        push_hex(&mut text, der.as_bytes());
        text.push(':');
        push_hex(&mut text, &self.observed_request_hash);
        f.write_str(&text)
    }
}

/// Appends `bytes` in lower-case hex (a proof is written for every signed
/// answer; `hex::encode` goes through `char`s one at a time).
fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
}

/// Picks the proof header as Chromium does: `X-Cup-Server-Proof` when present
/// and non-empty, else `ETag`.
pub fn select_proof<'a>(
    x_cup_server_proof: Option<&'a str>,
    etag: Option<&'a str>,
) -> Result<&'a str, CupError> {
    let present = |v: Option<&'a str>| v.filter(|v| !v.trim_matches([' ', '\t']).is_empty());
    present(x_cup_server_proof)
        .or(present(etag))
        .ok_or(CupError::MissingProof)
}

/// What a client keeps of a request it signed, to check the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    cup2key: Cup2Key,
    request_hash: Sha256Digest,
}

impl SignedRequest {
    /// The `cup2key` parameter value, `<key id>:<nonce>`.
    pub fn cup2key(&self) -> &Cup2Key {
        &self.cup2key
    }

    /// The SHA-256 of the request body.
    pub fn request_hash(&self) -> &Sha256Digest {
        &self.request_hash
    }

    /// The `cup2hreq` parameter value: lower-case hex of the request hash.
    pub fn cup2hreq(&self) -> String {
        hex::encode(self.request_hash)
    }

    /// The query parameters to add to the request URL:
    /// `cup2key=<key id>:<nonce>&cup2hreq=<hex>`. Every character is safe in
    /// a query as it is.
    pub fn query(&self) -> String {
        format!(
            "{CUP2KEY_PARAM}={}&{CUP2HREQ_PARAM}={}",
            self.cup2key,
            self.cup2hreq()
        )
    }
}

/// The CUP client: signs requests and verifies responses against a pinned
/// server key.
#[derive(Debug, Clone)]
pub struct CupClient {
    key_id: u32,
    key: VerifyingKey,
}

impl CupClient {
    /// A client pinned to `key` under `key_id`.
    pub fn new(key_id: u32, key: VerifyingKey) -> Self {
        Self { key_id, key }
    }

    /// A client pinned to a DER SubjectPublicKeyInfo P-256 key.
    pub fn from_public_key_der(key_id: u32, der: &[u8]) -> Result<Self, CupError> {
        let key = VerifyingKey::from_public_key_der(der).map_err(|e| {
            CupError::InvalidKey(format!("not a DER SubjectPublicKeyInfo P-256 key: {e}"))
        })?;
        Ok(Self::new(key_id, key))
    }

    /// A client pinned to a PEM (`PUBLIC KEY`) P-256 key.
    pub fn from_public_key_pem(key_id: u32, pem: &str) -> Result<Self, CupError> {
        let key = VerifyingKey::from_public_key_pem(pem)
            .map_err(|e| CupError::InvalidKey(format!("not a PEM P-256 public key: {e}")))?;
        Ok(Self::new(key_id, key))
    }

    /// The pinned key id.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The pinned key.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// Signs a request with a fresh random nonce (32 bytes, base64url without
    /// padding).
    pub fn sign_request(&self, request_body: &[u8]) -> Result<SignedRequest, CupError> {
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).map_err(|e| CupError::Random(e.to_string()))?;
        let nonce = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(nonce);
        self.sign_request_with_nonce(request_body, &nonce)
    }

    /// Signs a request with the given nonce. A nonce must never be reused:
    /// use [`CupClient::sign_request`] except to reproduce a known exchange.
    pub fn sign_request_with_nonce(
        &self,
        request_body: &[u8],
        nonce: &str,
    ) -> Result<SignedRequest, CupError> {
        Ok(SignedRequest {
            cup2key: Cup2Key::new(self.key_id, nonce)?,
            request_hash: sha256(request_body),
        })
    }

    /// Verifies a response given its `X-Cup-Server-Proof` and `ETag` header
    /// values (the first present and non-empty one is used).
    pub fn verify_response(
        &self,
        request: &SignedRequest,
        response_body: &[u8],
        x_cup_server_proof: Option<&str>,
        etag: Option<&str>,
    ) -> Result<(), CupError> {
        let proof = select_proof(x_cup_server_proof, etag)?;
        self.verify_proof(request, response_body, proof)
    }

    /// Verifies a response against one proof header value.
    ///
    /// Checks, in order: the request was signed for the pinned key id; the
    /// response is not empty; the proof parses; the request hash the server
    /// observed is the one sent; the signature verifies over the request hash
    /// sent (never the observed one), the response and the `cup2key`.
    pub fn verify_proof(
        &self,
        request: &SignedRequest,
        response_body: &[u8],
        proof: &str,
    ) -> Result<(), CupError> {
        if request.cup2key.key_id != self.key_id {
            return Err(CupError::KeyIdMismatch {
                expected: self.key_id,
                found: request.cup2key.key_id,
            });
        }
        if response_body.is_empty() {
            return Err(CupError::EmptyResponse);
        }
        let proof = ServerProof::parse(proof)?;
        if proof.observed_request_hash != request.request_hash {
            return Err(CupError::RequestHashMismatch {
                expected: hex::encode(request.request_hash),
                observed: hex::encode(proof.observed_request_hash),
            });
        }
        let digest = signed_digest(
            &request.request_hash,
            response_body,
            &request.cup2key.to_string(),
        );
        self.key
            .verify(&digest, &proof.signature)
            .map_err(|_| CupError::BadSignature)
    }
}

/// The CUP parameters of a request, as the server reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestParams {
    cup2key: Cup2Key,
    cup2hreq: Option<Sha256Digest>,
}

impl RequestParams {
    /// From parameter values. `cup2hreq` is optional in the protocol.
    pub fn new(cup2key: &str, cup2hreq: Option<&str>) -> Result<Self, CupError> {
        let cup2key = Cup2Key::parse(cup2key)?;
        let cup2hreq = cup2hreq
            .map(|h| {
                hex::decode(h)
                    .ok()
                    .and_then(|b| Sha256Digest::try_from(b.as_slice()).ok())
                    .ok_or_else(|| CupError::MalformedRequestHash(h.to_owned()))
            })
            .transpose()?;
        Ok(Self { cup2key, cup2hreq })
    }

    /// From a URL query string (without the leading `?`). Other parameters
    /// are ignored; values are percent-decoded; the first occurrence of a
    /// parameter wins.
    pub fn from_query(query: &str) -> Result<Self, CupError> {
        let mut cup2key = None;
        let mut cup2hreq = None;
        for pair in query.split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match name {
                CUP2KEY_PARAM => &mut cup2key,
                CUP2HREQ_PARAM => &mut cup2hreq,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(percent_decode(value));
            }
        }
        let cup2key = cup2key.ok_or(CupError::MissingCup2Key)?;
        Self::new(&cup2key, cup2hreq.as_deref())
    }

    /// The `cup2key`.
    pub fn cup2key(&self) -> &Cup2Key {
        &self.cup2key
    }

    /// The `cup2hreq` digest, when the client sent one.
    pub fn cup2hreq(&self) -> Option<&Sha256Digest> {
        self.cup2hreq.as_ref()
    }
}

/// Percent-decodes a query value (`+` stays `+`: CUP values never carry
/// spaces). Invalid escapes and non-UTF-8 results are kept so that the
/// value's own parser reports them.
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| value.to_owned())
}

/// The CUP server: signs responses with a P-256 private key.
///
/// Signatures are made with `ring`'s P-256 (assembly, with precomputed
/// multiples of the generator), about ten times faster than `p256`'s, which
/// loads and checks the key and signs only should `ring` refuse a key
/// `p256` accepts. Both produce the same kind of signature: ECDSA-P256-SHA256
/// over the same input, `s` normalised to the lower half, DER-encoded; the
/// nonce is random (hedged with the key and the input), not RFC 6979's.
#[derive(Clone)]
pub struct CupServer {
    key_id: u32,
    key: SigningKey,
    verifying_key: VerifyingKey,
    fast: Option<Arc<ring::signature::EcdsaKeyPair>>,
}

impl fmt::Debug for CupServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CupServer")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl CupServer {
    /// A server signing under `key_id` with `key`.
    pub fn new(key_id: u32, key: SigningKey) -> Self {
        let verifying_key = *key.verifying_key();
        let fast = ring::signature::EcdsaKeyPair::from_private_key_and_public_key(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &key.to_bytes(),
            verifying_key.to_encoded_point(false).as_bytes(),
            &ring::rand::SystemRandom::new(),
        )
        .map_err(|e| tracing::warn!(error = %e, "ring refuses the CUP key; signing with p256"))
        .ok()
        .map(Arc::new);
        Self {
            key_id,
            key,
            verifying_key,
            fast,
        }
    }

    /// Loads a private key from DER: PKCS#8 (`PrivateKeyInfo`) or SEC1
    /// (`ECPrivateKey`).
    pub fn from_private_key_der(key_id: u32, der: &[u8]) -> Result<Self, CupError> {
        let key = SigningKey::from_pkcs8_der(der)
            .or_else(|_| p256::SecretKey::from_sec1_der(der).map(SigningKey::from))
            .map_err(|_| {
                CupError::InvalidKey("not a PKCS#8 or SEC1 DER P-256 private key".to_owned())
            })?;
        Ok(Self::new(key_id, key))
    }

    /// Loads a private key from PEM: `PRIVATE KEY` (PKCS#8) or
    /// `EC PRIVATE KEY` (SEC1).
    pub fn from_private_key_pem(key_id: u32, pem: &str) -> Result<Self, CupError> {
        let key = if pem.contains("-----BEGIN EC PRIVATE KEY-----") {
            p256::SecretKey::from_sec1_pem(pem)
                .map(SigningKey::from)
                .map_err(|e| {
                    CupError::InvalidKey(format!("not a SEC1 PEM P-256 private key: {e}"))
                })?
        } else {
            SigningKey::from_pkcs8_pem(pem).map_err(|e| {
                CupError::InvalidKey(format!("not a PKCS#8 PEM P-256 private key: {e}"))
            })?
        };
        Ok(Self::new(key_id, key))
    }

    /// The key id this server signs under.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The public half of the signing key, for clients to pin.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.verifying_key
    }

    /// Produces the proof for a response: `<hex DER signature>:<hex SHA-256
    /// of request_body>`, to send in `X-Cup-Server-Proof` (and, for older
    /// clients, in `ETag` as `W/"<proof>"`).
    ///
    /// Refuses a request whose key id is not this server's
    /// ([`CupError::KeyIdMismatch`]) and one whose `cup2hreq` is not the hash
    /// of the body received ([`CupError::RequestHashMismatch`]).
    pub fn sign_response(
        &self,
        params: &RequestParams,
        request_body: &[u8],
        response_body: &[u8],
    ) -> Result<String, CupError> {
        self.sign_response_hashed(params, &sha256(request_body), response_body)
    }

    /// [`sign_response`](Self::sign_response) for a request whose body the
    /// caller has hashed already (`observed` is its SHA-256), as a server
    /// that checks `cup2hreq` before anything else does.
    pub fn sign_response_hashed(
        &self,
        params: &RequestParams,
        observed: &Sha256Digest,
        response_body: &[u8],
    ) -> Result<String, CupError> {
        if params.cup2key.key_id != self.key_id {
            return Err(CupError::KeyIdMismatch {
                expected: self.key_id,
                found: params.cup2key.key_id,
            });
        }
        if response_body.is_empty() {
            return Err(CupError::EmptyResponse);
        }
        let observed = *observed;
        if let Some(claimed) = params.cup2hreq
            && claimed != observed
        {
            return Err(CupError::RequestHashMismatch {
                expected: hex::encode(claimed),
                observed: hex::encode(observed),
            });
        }
        let digest = signed_digest(&observed, response_body, &params.cup2key.to_string());
        let signature = self.sign_digest(&digest)?;
        Ok(ServerProof {
            signature,
            observed_request_hash: observed,
        }
        .to_string())
    }

    /// ECDSA-P256-SHA256 over `digest` (which is hashed once more), with
    /// `ring` when it took the key, else `p256`; `s` in the lower half.
    fn sign_digest(&self, digest: &Sha256Digest) -> Result<Signature, CupError> {
        let signature = match &self.fast {
            Some(pair) => {
                let fixed = pair
                    .sign(&ring::rand::SystemRandom::new(), digest)
                    .map_err(|_| CupError::Signing("ring: the signature failed".into()))?;
                Signature::from_slice(fixed.as_ref())
                    .map_err(|e| CupError::Signing(e.to_string()))?
            }
            None => self
                .key
                .try_sign(digest)
                .map_err(|e| CupError::Signing(e.to_string()))?,
        };
        Ok(signature.normalize_s().unwrap_or(signature))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> CupServer {
        let key =
            SigningKey::from_slice(&sha256(b"upkeep cup unit test key")).expect("a valid scalar");
        CupServer::new(5, key)
    }

    #[test]
    fn ring_and_p256_signatures_both_verify_and_are_low_s() {
        let fast = server();
        assert!(fast.fast.is_some(), "ring takes the key");
        let slow = CupServer {
            fast: None,
            ..fast.clone()
        };
        let client = CupClient::new(5, *fast.verifying_key());
        for s in [&fast, &slow] {
            for _ in 0..8 {
                let request = client.sign_request(b"request").expect("signs");
                let params = RequestParams::from_query(&request.query()).expect("params");
                let proof = s.sign_response(&params, b"request", b"response").unwrap();
                let parsed = ServerProof::parse(&proof).unwrap();
                assert!(parsed.signature().normalize_s().is_none(), "low s");
                client
                    .verify_response(&request, b"response", Some(&proof), None)
                    .expect("verifies");
                assert_eq!(
                    client.verify_response(&request, b"other", Some(&proof), None),
                    Err(CupError::BadSignature)
                );
            }
        }
    }

    #[test]
    fn random_nonce_is_32_bytes_base64url_and_fresh() {
        let s = server();
        let client = CupClient::new(5, *s.verifying_key());
        let a = client.sign_request(b"body").expect("signs");
        let b = client.sign_request(b"body").expect("signs");
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(a.cup2key().nonce())
            .expect("base64url");
        assert_eq!(decoded.len(), NONCE_BYTES);
        assert_ne!(a.query(), b.query());
    }

    #[test]
    fn proof_parse_accepts_weak_and_quoted_forms() {
        let s = server();
        let params = RequestParams::new("5:abc", None).expect("params");
        let proof = s.sign_response(&params, b"q", b"r").expect("signs");
        let plain = ServerProof::parse(&proof).expect("plain");
        assert_eq!(
            ServerProof::parse(&format!("\"{proof}\"")).expect("quoted"),
            plain
        );
        assert_eq!(
            ServerProof::parse(&format!("W/\"{proof}\"")).expect("weak"),
            plain
        );
        assert_eq!(
            ServerProof::parse(&proof.to_uppercase()).expect("upper-case hex"),
            plain
        );
        assert_eq!(plain.to_string(), proof);
    }

    #[test]
    fn proof_parse_rejects_bad_shapes() {
        for bad in [
            "dead:beef",
            ":ab",
            "ab:",
            "abc",
            "W/\"\"",
            "zz:00",
            "\"",
            "3006020101020101:00",
        ] {
            assert!(
                matches!(ServerProof::parse(bad), Err(CupError::MalformedProof(_))),
                "{bad:?} gave {:?}",
                ServerProof::parse(bad)
            );
        }
        assert_eq!(ServerProof::parse("  "), Err(CupError::MissingProof));
    }

    #[test]
    fn cup2key_parsing() {
        let k = Cup2Key::parse("8:12345").expect("parses");
        assert_eq!((k.key_id(), k.nonce()), (8, "12345"));
        assert_eq!(k.to_string(), "8:12345");
        for bad in ["8", ":1", "x:1", "-1:1", "+1:1", "99999999999:1"] {
            assert!(
                matches!(Cup2Key::parse(bad), Err(CupError::MalformedCup2Key { .. })),
                "{bad:?}"
            );
        }
        for bad in ["8:", "8:a:b", "8:a b", "8:a+b"] {
            assert!(
                matches!(Cup2Key::parse(bad), Err(CupError::InvalidNonce { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn query_parsing_decodes_and_ignores_others() {
        let hash = hex::encode(sha256(b"x"));
        let p =
            RequestParams::from_query(&format!("a=1&cup2key=8%3Aab&cup2hreq={hash}&cup2key=9:z"))
                .expect("parses");
        assert_eq!(p.cup2key().to_string(), "8:ab");
        assert_eq!(p.cup2hreq(), Some(&sha256(b"x")));
        assert_eq!(
            RequestParams::from_query("a=1"),
            Err(CupError::MissingCup2Key)
        );
        assert!(matches!(
            RequestParams::from_query("cup2key=1:a&cup2hreq=00"),
            Err(CupError::MalformedRequestHash(_))
        ));
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn select_proof_prefers_x_cup_server_proof() {
        assert_eq!(select_proof(Some("a:b"), Some("c:d")), Ok("a:b"));
        assert_eq!(select_proof(Some(""), Some("c:d")), Ok("c:d"));
        assert_eq!(select_proof(None, Some("c:d")), Ok("c:d"));
        assert_eq!(select_proof(None, None), Err(CupError::MissingProof));
    }
}

/// Compiles the example of `docs/cup.md`.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/cup.md")]
struct CupDocExample;
