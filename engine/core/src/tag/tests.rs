use super::*;

const CHROME: &str = "{8A69D345-D564-463C-AFF1-A69D9E530F96}";

#[test]
fn reads_the_seed_example() {
    let tag = Tag::parse("appguid=FOO_BAR_APP_ID&appname=SomeName&needsadmin=prefers").unwrap();
    assert_eq!(tag.apps.len(), 1);
    let app = &tag.apps[0];
    assert_eq!(app.appid, "FOO_BAR_APP_ID");
    assert_eq!(app.appname.as_deref(), Some("SomeName"));
    assert_eq!(app.needsadmin, Some(NeedsAdmin::Prefers));
}

#[test]
fn keys_are_case_insensitive_values_decoded_and_trimmed() {
    let tag = Tag::parse(&format!(
        " AppGUID={CHROME} & APPNAME=My%20App &NeedsAdmin=TRUE&installdataindex =verboselog&Brand=GGLS&lang=en-GB&ap=x64-stable%26beta"
    ))
    .unwrap();
    let app = &tag.apps[0];
    assert_eq!(app.appid, CHROME);
    assert_eq!(app.appname.as_deref(), Some("My App"));
    assert_eq!(app.needsadmin, Some(NeedsAdmin::Yes));
    assert_eq!(app.installdataindex.as_deref(), Some("verboselog"));
    assert_eq!(app.ap.as_deref(), Some("x64-stable&beta"));
    assert_eq!(tag.brand.as_deref(), Some("GGLS"));
    assert_eq!(tag.lang.as_deref(), Some("en-GB"));
}

#[test]
fn several_apps_each_with_their_attributes_and_unknown_keys_kept() {
    let tag = Tag::parse(
        "iid={1}&future=1&appguid=org.example.a&appname=A&needsadmin=false&shade=blue\
         &appguid=org.example.b&ap=beta&installerdata=%7B%22x%22%3A1%7D&usagestats=1",
    )
    .unwrap();
    assert_eq!(tag.iid.as_deref(), Some("{1}"));
    assert_eq!(tag.usagestats, Some(1));
    assert_eq!(tag.extra, vec![("future".into(), "1".into())]);
    assert_eq!(tag.apps.len(), 2);
    assert_eq!(tag.apps[0].appname.as_deref(), Some("A"));
    assert_eq!(tag.apps[0].needsadmin, Some(NeedsAdmin::No));
    assert_eq!(tag.apps[0].extra, vec![("shade".into(), "blue".into())]);
    assert_eq!(tag.apps[1].ap.as_deref(), Some("beta"));
    assert_eq!(tag.apps[1].installerdata.as_deref(), Some("{\"x\":1}"));
    assert_eq!(tag.apps[1].appname, None);
}

#[test]
fn the_canonical_form_reads_back_alike() {
    let tag = Tag::parse(
        "appguid=org.example.a&appname=A%20%26%20B&needsadmin=prefers&brand=X&odd=%3D%25\
         &appguid=org.example.b&browser=3&flighting=true",
    )
    .unwrap();
    let text = tag.to_string();
    assert_eq!(Tag::parse(&text).unwrap(), tag, "{text}");
    assert!(
        text.starts_with(
            "brand=X&browser=3&flighting=true&appguid=org.example.a&appname=A%20%26%20B"
        ),
        "{text}"
    );
}

/// Parses `tag`, expecting a refusal; returns its message.
fn refused(tag: &str) -> (TagError, String) {
    let e = Tag::parse(tag).expect_err(tag);
    let m = e.to_string();
    (e, m)
}

#[test]
fn malformed_tags_are_refused_pointing_at_the_bad_part() {
    let (e, _) = refused("");
    assert_eq!(e, TagError::Empty);
    assert_eq!(refused(" & &").0, TagError::Empty);
    assert_eq!(refused("brand=X").0, TagError::NoApp);

    let (e, m) = refused("appguid=a&appname");
    assert!(matches!(e, TagError::NoValue { at: 10, .. }), "{e:?}");
    assert!(m.contains("\"appname\" at byte 10 has no value"), "{m}");

    let (e, m) = refused("appguid=a&=x");
    assert!(matches!(e, TagError::NoName { at: 10, .. }), "{e:?}");
    assert!(m.contains("no name"), "{m}");

    let (e, m) = refused("appguid=a&app name=x");
    assert!(matches!(e, TagError::BadName { .. }), "{e:?}");
    assert!(m.contains("app name=x"), "{m}");

    let (e, m) = refused("appguid=a&appname=50%");
    assert!(matches!(e, TagError::BadEscape { at: 10, .. }), "{e:?}");
    assert!(m.contains("'%' at byte 2"), "{m}");
    assert!(matches!(
        refused("appguid=a&appname=%FF").0,
        TagError::BadEscape { .. }
    ));

    let (e, m) = refused("appname=A&appguid=a");
    assert!(matches!(e, TagError::NoAppYet { at: 0, .. }), "{e:?}");
    assert!(m.contains("no appguid comes before it"), "{m}");

    let (e, m) = refused("appguid=a&needsadmin=maybe");
    assert!(matches!(e, TagError::BadValue { at: 10, .. }), "{e:?}");
    assert!(m.contains("true, false or prefers"), "{m}");

    assert!(matches!(
        refused("appguid=a&usagestats=3").0,
        TagError::BadValue { .. }
    ));
    assert!(matches!(
        refused("appguid=a&browser=-1").0,
        TagError::BadValue { .. }
    ));
    assert!(matches!(
        refused("appguid=a&flighting=yes").0,
        TagError::BadValue { .. }
    ));
    assert!(matches!(
        refused("appguid=../etc").0,
        TagError::BadValue { .. }
    ));
    assert!(matches!(
        refused("appguid=a%2Fb").0,
        TagError::BadValue { .. }
    ));

    let (e, m) = refused("appguid=a&appname=A&appname=B");
    assert!(matches!(e, TagError::Repeated { at: 20, .. }), "{e:?}");
    assert!(m.contains("repeats appname"), "{m}");
    assert!(matches!(
        refused("brand=a&appguid=x&BRAND=b").0,
        TagError::Repeated { .. }
    ));
    assert!(matches!(
        refused("appguid=x&k=1&K=2").0,
        TagError::Repeated { .. }
    ));

    let (e, _) = refused("appguid=Org.A&appguid=org.a");
    assert!(matches!(e, TagError::RepeatedApp { at: 14, .. }), "{e:?}");

    assert_eq!(
        refused("appguid=a\n&x=1").0,
        TagError::ControlCharacter { at: 9 }
    );
    let long = format!("appguid=a&x={}", "y".repeat(MAX_TAG_BYTES));
    assert!(matches!(refused(&long).0, TagError::TooLong(_)));
}

#[test]
fn the_same_key_may_appear_once_per_app() {
    let tag = Tag::parse("appguid=a&ap=1&appguid=b&ap=2").unwrap();
    assert_eq!(tag.apps[0].ap.as_deref(), Some("1"));
    assert_eq!(tag.apps[1].ap.as_deref(), Some("2"));
}
