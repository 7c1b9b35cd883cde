//! Properties over generated input: the parser never panics, titles keep their bounds, and no
//! untrusted text can open a heading, link, HTML tag or code block in a PRD.

mod common;
use flowback::markdown::escape;
use flowback::{delivery, occurrence::Occurrence, prd};
use proptest::prelude::*;
use pulldown_cmark::{Event, HeadingLevel, Parser, Tag, TagEnd};
use serde_json::json;

/// Strings rich in Markdown and HTML syntax, plus arbitrary Unicode.
fn hostile() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("```".to_owned()),
        Just("~~~".to_owned()),
        Just("<script>alert(1)</script>".to_owned()),
        Just("<!--".to_owned()),
        Just("# ".to_owned()),
        Just("\n".to_owned()),
        Just("\n\n".to_owned()),
        Just("[x](javascript:alert(1))".to_owned()),
        Just("![i](http://x/y.png)".to_owned()),
        Just("<http://evil.example>".to_owned()),
        Just("www.evil.example".to_owned()),
        Just("https://evil.example/a".to_owned()),
        Just("*".to_owned()),
        Just("_".to_owned()),
        Just("\\".to_owned()),
        Just("&lt;b&gt;".to_owned()),
        Just("&#60;".to_owned()),
        Just("|".to_owned()),
        Just("- ".to_owned()),
        Just("1. ".to_owned()),
        Just("> ".to_owned()),
        Just("    ".to_owned()),
        Just("---".to_owned()),
        Just("===".to_owned()),
        Just("`".to_owned()),
        Just("\u{2028}".to_owned()),
        any::<char>().prop_map(String::from),
        "[a-zA-Z0-9 ]{0,8}",
    ];
    prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

fn text_of(markdown: &str) -> String {
    let mut out = String::new();
    for event in Parser::new(markdown) {
        match event {
            Event::Text(t) => out.push_str(&t),
            Event::Start(Tag::Paragraph) | Event::End(TagEnd::Paragraph) => {}
            other => panic!("escaped text produced {other:?} from {markdown:?}"),
        }
    }
    out
}

fn occurrence_with(s: &str) -> Occurrence {
    common::occurrence_of_json(json!({
        "event": {
            "event": "$exception",
            "uuid": s,
            "distinct_id": s,
            "timestamp": "2026-12-04T15:25:12.063Z",
            "properties": {
                "$exception_list": [
                    {"type": s, "value": s, "module": s, "mechanism": {"type": s, "handled": false},
                     "stacktrace": {"frames": [{"function": s, "filename": s, "lineno": s, "colno": s, "in_app": true}]}},
                    {"type": s, "value": s}
                ],
                "$exception_fingerprint": format!("fp{}", s.len()),
                "$browser": s, "$browser_version": s, "$os": s, "$os_version": s, "$device_type": s,
                "$lib": s, "$lib_version": s, "$current_url": s, "$session_id": s, "$exception_issue_id": s
            }
        },
        "person": {"name": s, "url": s},
        "project": {"id": 2, "name": s, "url": "https://us.posthog.com/project/2"}
    }))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_the_parser(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = delivery::parse(&body);
    }

    #[test]
    fn arbitrary_json_values_in_every_field_never_panic(s in hostile(), n in any::<i64>(), b in any::<bool>()) {
        for value in [json!(s), json!(n), json!(b), json!([s, n]), json!({"k": s}), json!(null)] {
            let body = json!({
                "event": {"event": "$exception", "uuid": value, "timestamp": value, "distinct_id": value,
                          "properties": {"$exception_list": [{"type": value, "value": value, "mechanism": {"handled": value},
                                         "stacktrace": {"frames": [{"function": value, "in_app": value}]}}],
                                         "$current_url": value, "$exception_level": value, "$browser_version": value}},
                "person": {"url": value, "name": value},
                "project": {"id": 5, "url": value}
            });
            let d = delivery::parse(body.to_string().as_bytes()).unwrap();
            let o = Occurrence::from_delivery(&d, common::RECEIVED_AT).unwrap();
            let _ = prd::render(&common::prd_input_for(&o));
        }
    }

    #[test]
    fn titles_are_at_most_120_characters_on_one_line(kind in hostile(), message in hostile()) {
        let t = flowback::title::title(Some(&kind), Some(&message));
        prop_assert!(t.chars().count() <= 120);
        prop_assert!(!t.is_empty());
        prop_assert!(!t.chars().any(|c| c.is_control() || c == '\n'));
        prop_assert!(!t.contains("  "));
    }

    #[test]
    fn escaped_text_renders_as_exactly_that_text(s in hostile()) {
        let expected = s
            .split(flowback::markdown::is_blank)
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        prop_assert_eq!(text_of(&escape(&s)), expected);
    }

    #[test]
    fn untrusted_values_cannot_change_the_prd_structure(s in hostile()) {
        let o = occurrence_with(&s);
        let md = prd::render(&common::prd_input_for(&o));
        let mut headings = Vec::new();
        let mut in_heading = false;
        for event in Parser::new(&md) {
            match event {
                Event::Start(Tag::Heading { level, .. }) => {
                    prop_assert_eq!(level, HeadingLevel::H2);
                    in_heading = true;
                    headings.push(String::new());
                }
                Event::End(TagEnd::Heading(_)) => in_heading = false,
                Event::Text(t) if in_heading => headings.last_mut().unwrap().push_str(&t),
                Event::Html(h) | Event::InlineHtml(h) => prop_assert!(false, "HTML {h:?} in {md}"),
                Event::Code(c) => prop_assert!(false, "code span {c:?} in {md}"),
                Event::Start(Tag::CodeBlock(_)) => prop_assert!(false, "code block in {md}"),
                Event::Start(Tag::Image { .. }) => prop_assert!(false, "image in {md}"),
                Event::Start(Tag::Link { dest_url, .. }) => {
                    let ours = [o.links.page.as_deref(), o.links.posthog_issue.as_deref()];
                    prop_assert!(ours.contains(&Some(&*dest_url)), "foreign link {dest_url:?} in {md}");
                }
                _ => {}
            }
        }
        prop_assert_eq!(headings, prd::SECTIONS.map(String::from).to_vec());
    }
}

#[test]
fn a_message_with_fences_and_script_tags_stays_inert_text() {
    let o = occurrence_with("```\n<script>alert('x')</script>\n# Owned");
    let md = prd::render(&common::prd_input_for(&o));
    assert!(
        md.contains("\\`\\`\\` \\<script\\>alert\\(\\'x\\'\\)\\<\\/script\\> \\# Owned"),
        "{md}"
    );
}

#[test]
fn a_huge_chain_is_cut_at_32_kb_on_a_line_boundary() {
    let long = "x".repeat(4000);
    let list: Vec<_> = (0..10)
        .map(|i| json!({"type": format!("E{i}"), "value": long}))
        .collect();
    let o = common::occurrence_of_json(json!({
        "event": {"event": "$exception", "properties": {"$exception_list": list}},
        "project": {"id": 2}
    }));
    let md = prd::render(&common::prd_input_for(&o));
    assert!(md.len() <= 32 * 1024, "{}", md.len());
    assert!(md.ends_with("_The PRD was cut at 32 KB; the full evidence is in PostHog._\n"));
    assert!(md.contains("## Technical evidence"));
}
