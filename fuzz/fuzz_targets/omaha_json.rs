//! Fuzzes the Omaha JSON parsers: 3.1 and 4.0 responses
//! (`omaha::parse_response` with each JSON protocol and
//! `omaha::parse_response_any`) and requests (`omaha::parse_request`).
//!
//! Beyond "no panic": a parsed document written back in its dialect parses
//! to the same value (apps that were dropped as malformed stay dropped), and
//! the protocol-specific and the any-dialect parsers agree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use upkeep_core::omaha::{
    Protocol, Request, Response, parse_request, parse_request_with_limit, parse_response,
    parse_response_any,
};

/// Writes `first` in `protocol`, parses it back and checks nothing changed.
fn response_round_trips(first: &Response, protocol: Protocol) {
    let body = first.to_body(protocol);
    let second = match parse_response(body.as_bytes(), protocol) {
        Ok(r) => r,
        Err(e) => panic!("a written {protocol} response does not parse: {e}\n{body}"),
    };
    assert!(
        second.app_errors.is_empty(),
        "the writer wrote an app the parser drops: {:?}\n{body}",
        second.app_errors
    );
    let mut expected = first.clone();
    expected.app_errors.clear();
    assert_eq!(second, expected, "{protocol} round trip changed\n{body}");
}

/// Writes `first` in its dialect, parses it back and checks nothing changed.
fn request_round_trips(first: &Request) {
    let body = first.to_body();
    // The written body may be longer than the input (escapes), so no limit.
    let second = match parse_request_with_limit(body.as_bytes(), Some(first.protocol), usize::MAX) {
        Ok(r) => r,
        Err(e) => panic!(
            "a written {} request does not parse: {e}\n{body}",
            first.protocol
        ),
    };
    assert_eq!(&second, first, "request round trip changed\n{body}");
}

fuzz_target!(|data: &[u8]| {
    let any = parse_response_any(data);
    for protocol in [Protocol::Json31, Protocol::Json40] {
        if let Ok(first) = parse_response(data, protocol) {
            assert_eq!(first.protocol, protocol);
            // What parses for a named protocol parses the same when the
            // dialect is detected.
            match &any {
                Ok(a) => assert_eq!(a, &first),
                Err(e) => panic!("{protocol} parses but parse_response_any refuses: {e}"),
            }
            response_round_trips(&first, protocol);
        }
    }
    if let Ok(a) = &any {
        response_round_trips(a, a.protocol);
    }

    if let Ok(request) = parse_request(data, None) {
        request_round_trips(&request);
    }
});
