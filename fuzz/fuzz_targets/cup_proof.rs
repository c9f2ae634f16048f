//! Fuzzes the CUP parsers: the server proof header (`X-Cup-Server-Proof` /
//! `ETag`), `cup2key` and the request query, plus proof verification.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use p256::ecdsa::SigningKey;
use upkeep_core::cup::{Cup2Key, CupClient, CupError, RequestParams, ServerProof, SignedRequest};

struct Fixture {
    client: CupClient,
    request: SignedRequest,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let key = SigningKey::from_slice(&[7u8; 32]).expect("7…7 is a valid P-256 scalar");
    let client = CupClient::new(8, *key.verifying_key());
    let request = client
        .sign_request_with_nonce(b"Request_A", "12345")
        .expect("valid nonce");
    Fixture { client, request }
});

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    match ServerProof::parse(&text) {
        Ok(proof) => {
            // The canonical form parses back to the same proof.
            let canonical = proof.to_string();
            assert_eq!(
                ServerProof::parse(&canonical).as_ref(),
                Ok(&proof),
                "{canonical}"
            );
            assert_eq!(
                ServerProof::parse(&format!("W/\"{canonical}\"")).as_ref(),
                Ok(&proof)
            );
        }
        Err(CupError::MissingProof | CupError::MalformedProof(_)) => {}
        Err(other) => panic!("proof parsing returned an unexpected error: {other:?}"),
    }

    // Verification never panics, and succeeds only for a proof that parses
    // and names the request that was sent.
    let fixture = &*FIXTURE;
    if fixture
        .client
        .verify_proof(&fixture.request, b"Response_A", &text)
        .is_ok()
    {
        let proof = ServerProof::parse(&text).expect("a verified proof parses");
        assert_eq!(
            proof.observed_request_hash(),
            fixture.request.request_hash()
        );
    }

    if let Ok(key) = Cup2Key::parse(&text) {
        assert_eq!(Cup2Key::parse(&key.to_string()).as_ref(), Ok(&key));
    }

    if let Ok(params) = RequestParams::from_query(&text) {
        let again = RequestParams::new(&params.cup2key().to_string(), None)
            .expect("a parsed cup2key re-parses");
        assert_eq!(again.cup2key(), params.cup2key());
    }
});
