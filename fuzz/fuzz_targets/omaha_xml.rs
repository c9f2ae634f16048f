//! Fuzzes the Omaha 3.0 XML parsers: responses (`omaha::parse_response`
//! with `Protocol::Xml30`, `omaha::parse_response_any`), requests
//! (`omaha::parse_request`) and offline manifests (`.gup`: the manifest
//! parse of `omaha::offline::read_manifest`, then `install_command` and
//! `install_data`).
//!
//! Beyond "no panic": a parsed response or request written back as XML
//! parses to the same value; the 3.0 and the any-dialect response parsers
//! agree; an offline installer is always a plain file inside the offline
//! folder, and install data is the text of the app's matching data element.
#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use upkeep_core::omaha::offline::{install_command, install_data};
use upkeep_core::omaha::{
    Protocol, Request, Response, parse_request, parse_request_with_limit, parse_response,
    parse_response_any,
};

fn response_round_trips(first: &Response) {
    let body = first.to_body(Protocol::Xml30);
    let second = match parse_response(body.as_bytes(), Protocol::Xml30) {
        Ok(r) => r,
        Err(e) => panic!("a written 3.0 response does not parse: {e}\n{body}"),
    };
    assert!(
        second.app_errors.is_empty(),
        "the writer wrote an app the parser drops: {:?}\n{body}",
        second.app_errors
    );
    let mut expected = first.clone();
    expected.app_errors.clear();
    assert_eq!(second, expected, "3.0 round trip changed\n{body}");
}

fn request_round_trips(first: &Request) {
    let body = first.to_body();
    let second = match parse_request_with_limit(body.as_bytes(), Some(first.protocol), usize::MAX) {
        Ok(r) => r,
        Err(e) => panic!(
            "a written {} request does not parse: {e}\n{body}",
            first.protocol
        ),
    };
    assert_eq!(&second, first, "request round trip changed\n{body}");
}

/// What an offline install reads from a parsed manifest.
fn offline_checks(manifest: &Response) {
    let dir = Path::new("/offline");
    for app in &manifest.apps {
        let id = app.appid.as_str();
        if let Ok(cmd) = install_command(manifest, id, dir) {
            assert_eq!(cmd.installer.parent(), Some(dir), "{cmd:?}");
            let name = cmd
                .installer
                .strip_prefix(dir)
                .expect("the installer is inside the offline folder");
            let mut parts = name.components();
            assert!(
                matches!(parts.next(), Some(Component::Normal(_))) && parts.next().is_none(),
                "installer {name:?} is not a plain file name"
            );
        }
        // Ids compare without ASCII case: the first app with this id answers.
        let answers = manifest.app(id).is_some_and(|a| std::ptr::eq(a, app));
        for d in &app.data {
            let Some(index) = d.index.as_deref() else {
                continue;
            };
            let found = install_data(manifest, id, index);
            if answers && d.name.as_deref() == Some("install") {
                let first = app
                    .data
                    .iter()
                    .find(|e| {
                        e.name.as_deref() == Some("install") && e.index.as_deref() == Some(index)
                    })
                    .map(|e| e.text.as_str());
                assert_eq!(found, first, "install data {index:?} of {id}");
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let any = parse_response_any(data);
    if let Ok(first) = parse_response(data, Protocol::Xml30) {
        assert_eq!(first.protocol, Protocol::Xml30);
        match &any {
            Ok(a) => assert_eq!(a, &first),
            Err(e) => panic!("3.0 parses but parse_response_any refuses: {e}"),
        }
        response_round_trips(&first);
    }
    // An offline manifest is read with parse_response_any.
    if let Ok(manifest) = &any {
        offline_checks(manifest);
    }

    if let Ok(request) = parse_request(data, None) {
        request_round_trips(&request);
    }
});
