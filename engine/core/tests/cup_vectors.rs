//! CUP-ECDSA against Chromium's test vectors, negative cases derived from
//! them, and round trips between upkeep's server and client.
//!
//! The vectors in `shared/testdata/chromium/cup/ecdsa_vectors.json` restate
//! values from Chromium's `components/client_update_protocol/ecdsa_unittest.cc`
//! (Copyright The Chromium Authors, BSD-3-Clause; see
//! `shared/testdata/chromium/LICENSE`).

use base64::Engine as _;
use serde_json::Value;
use upkeep_core::cup::{
    CupClient, CupError, CupServer, NONCE_BYTES, RequestParams, ServerProof, SignedRequest, sha256,
};

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/testdata");
const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");

struct Vectors {
    json: Value,
    client: CupClient,
}

fn field<'a>(v: &'a Value, name: &str) -> &'a Value {
    v.get(name)
        .unwrap_or_else(|| panic!("the vectors have no {name:?} field"))
}

fn text<'a>(v: &'a Value, name: &str) -> &'a str {
    field(v, name)
        .as_str()
        .unwrap_or_else(|| panic!("{name:?} is not a string"))
}

fn load() -> Vectors {
    let path = format!("{TESTDATA}/chromium/cup/ecdsa_vectors.json");
    let data = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    let json: Value = serde_json::from_str(&data).expect("the vectors are JSON");
    let key_id = u32::try_from(field(&json, "key_id").as_u64().expect("key_id is a number"))
        .expect("key_id fits u32");
    let der = base64::engine::general_purpose::STANDARD
        .decode(text(field(&json, "public_key"), "base64"))
        .expect("the public key is base64");
    let client = CupClient::from_public_key_der(key_id, &der).expect("the Chromium key loads");
    Vectors { json, client }
}

impl Vectors {
    fn nonce(&self) -> &str {
        text(&self.json, "nonce_override")
    }

    /// The request the valid vectors answer: Request_A with nonce 12345.
    fn request(&self) -> SignedRequest {
        self.client
            .sign_request_with_nonce(text(&self.json, "request_body").as_bytes(), self.nonce())
            .expect("the vector nonce is valid")
    }

    fn valid(&self) -> Vec<(String, Vec<u8>, String)> {
        field(&self.json, "valid_responses")
            .as_array()
            .expect("valid_responses is a list")
            .iter()
            .map(|v| {
                assert_eq!(text(v, "expect"), "valid");
                (
                    text(v, "id").to_owned(),
                    text(v, "response_body").as_bytes().to_vec(),
                    text(v, "etag").to_owned(),
                )
            })
            .collect()
    }
}

#[test]
fn every_valid_vector_verifies() {
    let v = load();
    let request = v.request();
    assert_eq!(
        request.cup2key().to_string(),
        text(&v.json, "cup2key_value")
    );
    assert_eq!(request.cup2hreq(), text(&v.json, "request_hash_sha256_hex"));

    let mut checked = 0;
    for (id, response, etag) in v.valid() {
        // As a strong ETag, a quoted ETag, a weak ETag and as X-Cup-Server-Proof.
        let forms = [etag.clone(), format!("\"{etag}\""), format!("W/\"{etag}\"")];
        for form in &forms {
            v.client
                .verify_response(&request, &response, None, Some(form))
                .unwrap_or_else(|e| panic!("vector {id} as ETag {form:?}: {e}"));
        }
        v.client
            .verify_response(&request, &response, Some(&etag), None)
            .unwrap_or_else(|e| panic!("vector {id} as X-Cup-Server-Proof: {e}"));
        // X-Cup-Server-Proof wins over a broken ETag.
        v.client
            .verify_response(&request, &response, Some(&etag), Some("garbage"))
            .unwrap_or_else(|e| panic!("vector {id} with a bad ETag beside: {e}"));
        checked += 1;
    }
    println!("checked {checked} valid Chromium CUP-ECDSA vectors, each in 5 header forms");
    assert!(
        checked >= 2,
        "expected at least 2 valid vectors, found {checked}"
    );
}

#[test]
fn request_signing_matches_chromium() {
    let v = load();
    let facts = field(&v.json, "sign_request");
    let body = text(facts, "request_body").as_bytes();
    assert_eq!(
        hex::encode(sha256(body)),
        text(facts, "request_hash_sha256_hex")
    );

    let a = v.client.sign_request(body).expect("signs");
    let b = v.client.sign_request(body).expect("signs");
    for req in [&a, &b] {
        let q = req.query();
        assert!(q.starts_with(text(facts, "query_starts_with")), "{q}");
        assert!(q.ends_with(text(facts, "query_ends_with")), "{q}");
        assert!(
            req.cup2key()
                .to_string()
                .starts_with(text(facts, "cup2key_starts_with"))
        );
        let nonce = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(req.cup2key().nonce())
            .expect("the nonce is base64url without padding");
        assert_eq!(nonce.len(), NONCE_BYTES);
    }
    assert_ne!(
        a.query(),
        b.query(),
        "two signatures of one request carry different nonces"
    );
}

#[test]
fn the_key_loads_from_pem_too() {
    let v = load();
    let b64 = text(field(&v.json, "public_key"), "base64");
    // PEM wraps base64 at 64 characters.
    let wrapped: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        wrapped.join("\n")
    );
    let from_pem = CupClient::from_public_key_pem(8, &pem).expect("PEM loads");
    assert_eq!(from_pem.verifying_key(), v.client.verifying_key());
    assert!(matches!(
        CupClient::from_public_key_der(8, b"\x30\x03\x02\x01\x01"),
        Err(CupError::InvalidKey(_))
    ));
    assert!(matches!(
        CupClient::from_public_key_pem(8, "not a key"),
        Err(CupError::InvalidKey(_))
    ));
}

#[test]
fn missing_proof_is_missing_proof() {
    let v = load();
    let request = v.request();
    let (_, response, _) = &v.valid()[0];
    for (x, e) in [
        (None, None),
        (Some(""), None),
        (None, Some("")),
        (Some(" "), Some("")),
    ] {
        assert_eq!(
            v.client.verify_response(&request, response, x, e),
            Err(CupError::MissingProof),
            "{x:?} {e:?}"
        );
    }
}

#[test]
fn malformed_proofs_are_malformed_proof() {
    let v = load();
    let request = v.request();
    let (_, response, etag) = &v.valid()[0];
    let (sig, hash) = etag.split_once(':').expect("the vector has a ':'");
    let cases = [
        "dead:beef".to_owned(),
        format!("{sig}{hash}"),                    // no delimiter
        format!(":{hash}"),                        // no signature
        format!("{sig}:"),                         // no hash
        format!("{sig}:{}", &hash[..62]),          // short hash
        format!("{sig}:{hash}00"),                 // long hash
        format!("{sig}x:{hash}"),                  // odd, non-hex signature
        format!("{}:{hash}", &sig[..14]),          // 7-byte signature
        format!("{sig}{}:{hash}", "00".repeat(2)), // 74-byte signature
        format!("31{}:{hash}", &sig[2..]),         // not a DER SEQUENCE
        format!("W/{sig}:{hash}\""),               // unbalanced quotes
    ];
    for case in &cases {
        let got = v
            .client
            .verify_response(&request, response, None, Some(case));
        assert!(
            matches!(got, Err(CupError::MalformedProof(_))),
            "{case:?} gave {got:?}"
        );
    }
    println!("checked {} malformed proofs", cases.len());
}

#[test]
fn tampered_request_is_request_hash_mismatch() {
    let v = load();
    let (_, response, etag) = &v.valid()[0];
    let tampered = v
        .client
        .sign_request_with_nonce(b"Request_B", v.nonce())
        .expect("signs");
    let got = v
        .client
        .verify_response(&tampered, response, None, Some(etag));
    assert_eq!(
        got,
        Err(CupError::RequestHashMismatch {
            expected: hex::encode(sha256(b"Request_B")),
            observed: text(&v.json, "request_hash_sha256_hex").to_owned(),
        })
    );
}

#[test]
fn tampered_response_is_bad_signature() {
    let v = load();
    let request = v.request();
    for (id, response, etag) in v.valid() {
        let mut tampered = response.clone();
        tampered[0] ^= 1;
        for body in [
            tampered.as_slice(),
            b"Response_B",
            &[response.as_slice(), b" "].concat(),
        ] {
            let got = v.client.verify_response(&request, body, Some(&etag), None);
            assert_eq!(
                got,
                Err(CupError::BadSignature),
                "vector {id}, body {body:?}"
            );
        }
    }
}

#[test]
fn tampered_signature_is_bad_signature() {
    let v = load();
    let request = v.request();
    let (_, response, etag) = &v.valid()[0];
    // Flip one bit inside r (keeps the DER valid).
    let mut bytes = hex::decode(etag.split_once(':').expect("has ':'").0).expect("hex");
    bytes[10] ^= 0x01;
    let proof = format!(
        "{}:{}",
        hex::encode(bytes),
        text(&v.json, "request_hash_sha256_hex")
    );
    assert_eq!(
        v.client.verify_proof(&request, response, &proof),
        Err(CupError::BadSignature)
    );
}

#[test]
fn responses_to_another_nonce_do_not_verify() {
    let v = load();
    let (_, response, etag) = &v.valid()[0];
    let body = text(&v.json, "request_body").as_bytes();
    // A replay: the proof answers nonce 12345, this request used another one.
    for nonce in ["12346", "1234", "54321"] {
        let request = v
            .client
            .sign_request_with_nonce(body, nonce)
            .expect("signs");
        assert_eq!(
            v.client.verify_proof(&request, response, etag),
            Err(CupError::BadSignature),
            "{nonce}"
        );
    }
    // A fresh random nonce never matches an old proof either.
    let request = v.client.sign_request(body).expect("signs");
    assert_eq!(
        v.client.verify_proof(&request, response, etag),
        Err(CupError::BadSignature)
    );
    // A nonce that cannot be sent is refused before anything is signed.
    for nonce in ["", "12 345", "12:345", "a&b", &"a".repeat(257)] {
        let got = v.client.sign_request_with_nonce(body, nonce);
        assert!(
            matches!(got, Err(CupError::InvalidNonce { .. })),
            "{nonce:?} gave {got:?}"
        );
    }
}

#[test]
fn wrong_key_id_is_key_id_mismatch() {
    let v = load();
    let (_, response, etag) = &v.valid()[0];
    let body = text(&v.json, "request_body").as_bytes();
    // A request made for key 9 cannot be checked with the key pinned as 8.
    let other = CupClient::new(9, *v.client.verifying_key());
    let request = other
        .sign_request_with_nonce(body, v.nonce())
        .expect("signs");
    assert_eq!(
        v.client.verify_proof(&request, response, etag),
        Err(CupError::KeyIdMismatch {
            expected: 8,
            found: 9
        })
    );
    // The same key pinned under key id 9 yields another signed message.
    assert_eq!(
        other.verify_proof(&request, response, etag),
        Err(CupError::BadSignature)
    );
}

#[test]
fn empty_response_is_empty_response() {
    let v = load();
    let (_, _, etag) = &v.valid()[0];
    assert_eq!(
        v.client.verify_proof(&v.request(), b"", etag),
        Err(CupError::EmptyResponse)
    );
}

fn read_key(name: &str) -> String {
    let path = format!("{KEYS}/{name}");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

#[test]
fn server_keys_load_from_pkcs8_and_sec1() {
    let pkcs8 = CupServer::from_private_key_pem(4, &read_key("cup_test_key.pkcs8.pem"))
        .expect("PKCS#8 PEM");
    let sec1 =
        CupServer::from_private_key_pem(4, &read_key("cup_test_key.sec1.pem")).expect("SEC1 PEM");
    let public =
        CupClient::from_public_key_pem(4, &read_key("cup_test_key.pub.pem")).expect("SPKI PEM");
    assert_eq!(pkcs8.verifying_key(), public.verifying_key());
    assert_eq!(sec1.verifying_key(), public.verifying_key());

    for (label, name) in [
        ("PRIVATE KEY", "cup_test_key.pkcs8.pem"),
        ("EC PRIVATE KEY", "cup_test_key.sec1.pem"),
    ] {
        let pem = read_key(name);
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64");
        let server =
            CupServer::from_private_key_der(4, &der).unwrap_or_else(|e| panic!("{label} DER: {e}"));
        assert_eq!(server.verifying_key(), public.verifying_key(), "{label}");
    }
    assert!(matches!(
        CupServer::from_private_key_pem(4, &read_key("cup_test_key.pub.pem")),
        Err(CupError::InvalidKey(_))
    ));
    assert!(matches!(
        CupServer::from_private_key_der(4, b"\x30\x00"),
        Err(CupError::InvalidKey(_))
    ));
}

fn test_pair(key_id: u32) -> (CupServer, CupClient) {
    let server = CupServer::from_private_key_pem(key_id, &read_key("cup_test_key.pkcs8.pem"))
        .expect("loads");
    let client =
        CupClient::from_public_key_pem(key_id, &read_key("cup_test_key.pub.pem")).expect("loads");
    (server, client)
}

#[test]
fn round_trip_server_signs_client_verifies() {
    let (server, client) = test_pair(4);
    let request_body = br#"{"request":{"protocol":"4.0","apps":[]}}"#;
    let response_body = b")]}'\n{\"response\":{\"protocol\":\"4.0\"}}";
    for _ in 0..3 {
        let request = client.sign_request(request_body).expect("signs");
        let params =
            RequestParams::from_query(&request.query()).expect("the server reads the query");
        let proof = server
            .sign_response(&params, request_body, response_body)
            .expect("server signs");
        let parsed = ServerProof::parse(&proof).expect("our proof parses");
        assert_eq!(parsed.observed_request_hash(), request.request_hash());
        client
            .verify_response(&request, response_body, Some(&proof), None)
            .expect("verifies");
        client
            .verify_response(
                &request,
                response_body,
                None,
                Some(&format!("W/\"{proof}\"")),
            )
            .expect("verifies as weak ETag");
        // The same proof does not cover another response or request.
        assert_eq!(
            client.verify_response(&request, b"{}", Some(&proof), None),
            Err(CupError::BadSignature)
        );
        let other = client.sign_request(request_body).expect("signs");
        assert_eq!(
            client.verify_response(&other, response_body, Some(&proof), None),
            Err(CupError::BadSignature)
        );
    }
}

#[test]
fn round_trip_with_the_chromium_nonce_format() {
    let (server, client) = test_pair(8);
    let request = client
        .sign_request_with_nonce(b"Request_A", "12345")
        .expect("signs");
    let params = RequestParams::new("8:12345", Some(&request.cup2hreq())).expect("params");
    let proof = server
        .sign_response(&params, b"Request_A", b"Response_A")
        .expect("signs");
    client
        .verify_proof(&request, b"Response_A", &proof)
        .expect("verifies");
    // A Chromium-pinned client does not accept our key's signature.
    let chromium = load().client;
    assert_eq!(
        chromium.verify_proof(&request, b"Response_A", &proof),
        Err(CupError::BadSignature)
    );
}

#[test]
fn server_refuses_bad_requests() {
    let (server, _) = test_pair(4);
    let body = b"request";
    let hash = hex::encode(sha256(body));
    let wrong_key = RequestParams::new("5:abc", Some(&hash)).expect("params");
    assert_eq!(
        server.sign_response(&wrong_key, body, b"response"),
        Err(CupError::KeyIdMismatch {
            expected: 4,
            found: 5
        })
    );
    let params = RequestParams::new("4:abc", Some(&hash)).expect("params");
    assert_eq!(
        server.sign_response(&params, b"tampered", b"response"),
        Err(CupError::RequestHashMismatch {
            expected: hash.clone(),
            observed: hex::encode(sha256(b"tampered"))
        })
    );
    assert_eq!(
        server.sign_response(&params, body, b""),
        Err(CupError::EmptyResponse)
    );
    // Without cup2hreq the server signs what it observed, and the client
    // finds out the request was changed.
    let (_, client) = test_pair(4);
    let request = client.sign_request_with_nonce(body, "abc").expect("signs");
    let no_hreq = RequestParams::new("4:abc", None).expect("params");
    let proof = server
        .sign_response(&no_hreq, b"tampered", b"response")
        .expect("signs");
    assert!(matches!(
        client.verify_proof(&request, b"response", &proof),
        Err(CupError::RequestHashMismatch { .. })
    ));
    assert!(matches!(
        RequestParams::new("4:a b", None),
        Err(CupError::InvalidNonce { .. })
    ));
    assert!(matches!(
        RequestParams::new("four:ab", None),
        Err(CupError::MalformedCup2Key { .. })
    ));
    assert_eq!(
        RequestParams::from_query("cup2hreq=00"),
        Err(CupError::MissingCup2Key)
    );
}
