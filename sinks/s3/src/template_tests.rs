//! Unit tests of key templates and time zones.

use std::time::{Duration, SystemTime};

use serde_json::json;

use super::*;

fn parts(time: CivilTime) -> KeyParts<'static> {
    KeyParts {
        pipeline: "orders",
        stream: "clicks",
        shard_id: "shardId-000000000001",
        first_seq: "4959",
        first_subseq: 0,
        last_seq: "4961",
        last_subseq: 2,
        time,
    }
}

#[test]
fn the_default_template_renders_every_part() {
    let template = KeyTemplate::parse(crate::config::DEFAULT_KEY).expect("default parses");
    assert!(!template.has_fields());
    let time = CivilTime::from_unix(1_700_000_000, 0); // 2023-11-14T22:13:20Z
    assert_eq!(
        template.render(&parts(time), &[], ".ndjson.gz"),
        "clicks/2023/11/14/22/shardId-000000000001-4959-0-4961-2.ndjson.gz"
    );
}

#[test]
fn fields_minutes_pipeline_and_escaped_braces() {
    let template = KeyTemplate::parse("{pipeline}/{{x}}/c={field.geo.country}/{HH}{mm}/{shard_id}/{first_seq}-{first_subseq}").expect("parses");
    assert!(template.has_fields());
    let record = json!({"geo": {"country": "fr/be"}, "n": 1});
    let values = template.partition_values(&record).expect("has the field");
    assert_eq!(values, ["fr_be"]);
    let time = CivilTime::from_unix(1_700_000_000 + 59, 0);
    assert_eq!(template.render(&parts(time), &values, ""), "orders/{x}/c=fr_be/2214/shardId-000000000001/4959-0");
    let number = KeyTemplate::parse("{field.n}/{field.ok}/{shard_id}{first_seq}{first_subseq}").expect("parses");
    assert_eq!(number.partition_values(&json!({"n": 7, "ok": true})).expect("values"), ["7", "true"]);
}

#[test]
fn missing_null_and_nested_fields_are_reasons() {
    let template = KeyTemplate::parse("{field.a.b}/{shard_id}/{first_seq}/{first_subseq}").expect("parses");
    let missing = template.partition_values(&json!({"a": {}})).expect_err("missing");
    assert!(missing.contains("{field.a.b}") && missing.contains("missing"), "{missing}");
    assert!(template.partition_values(&json!({"a": {"b": null}})).expect_err("null").contains("null"));
    assert!(template.partition_values(&json!({"a": {"b": [1]}})).expect_err("array").contains("object or array"));
    assert!(template.partition_values(&json!("text")).is_err());
}

#[test]
fn bad_templates_are_refused_with_the_reason() {
    for (text, expected) in [
        ("{stream}/{nope}/{shard_id}/{first_seq}/{first_subseq}", "unknown placeholder `{nope}`"),
        ("{stream/{shard_id}", "unclosed"),
        ("a}b/{shard_id}/{first_seq}/{first_subseq}", "unmatched"),
        ("{field.}/{shard_id}/{first_seq}/{first_subseq}", "unknown placeholder"),
        ("{field.a..b}/{shard_id}/{first_seq}/{first_subseq}", "unknown placeholder"),
        ("{stream}/{first_seq}/{first_subseq}", "must contain {shard_id}"),
        ("{shard_id}/{last_seq}/{first_subseq}", "must contain {first_seq}"),
        ("{shard_id}/{first_seq}", "must contain {first_subseq}"),
    ] {
        let e = KeyTemplate::parse(text).expect_err(text);
        assert!(e.contains(expected), "{text}: {e}");
    }
}

#[test]
fn civil_time_matches_known_dates() {
    assert_eq!(CivilTime::from_unix(0, 0), CivilTime { year: 1970, month: 1, day: 1, hour: 0, minute: 0 });
    // 2024-02-29T23:30:00Z, leap day; +01:00 is already March 1st.
    let t = 1_709_249_400;
    assert_eq!(CivilTime::from_unix(t, 0), CivilTime { year: 2024, month: 2, day: 29, hour: 23, minute: 30 });
    assert_eq!(CivilTime::from_unix(t, 3600), CivilTime { year: 2024, month: 3, day: 1, hour: 0, minute: 30 });
    assert_eq!(CivilTime::from_unix(-1, 0), CivilTime { year: 1969, month: 12, day: 31, hour: 23, minute: 59 });
    // 2000-03-01 and 2100-01-01 (century rules).
    assert_eq!(CivilTime::from_unix(951_868_800, 0), CivilTime { year: 2000, month: 3, day: 1, hour: 0, minute: 0 });
    assert_eq!(CivilTime::from_unix(4_102_444_800, 0), CivilTime { year: 2100, month: 1, day: 1, hour: 0, minute: 0 });
}

#[test]
fn time_zone_specs() {
    assert_eq!(TimeZoneSpec::parse("UTC"), Ok(TimeZoneSpec::Utc));
    assert_eq!(TimeZoneSpec::parse("+02:00"), Ok(TimeZoneSpec::Fixed(7200)));
    assert_eq!(TimeZoneSpec::parse("-0530"), Ok(TimeZoneSpec::Fixed(-19_800)));
    assert_eq!(TimeZoneSpec::parse("+09"), Ok(TimeZoneSpec::Fixed(32_400)));
    assert_eq!(TimeZoneSpec::parse("America/New_York"), Ok(TimeZoneSpec::Iana("America/New_York".into())));
    for bad in ["+25:00", "+2:00", "+02:60", "../etc/passwd", "/etc/localtime", "", "Europe/Pa ris"] {
        assert!(TimeZoneSpec::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn fixed_offsets_and_iana_zones_convert_instants() {
    let instant = SystemTime::UNIX_EPOCH + Duration::from_secs(1_719_835_200); // 2024-07-01T12:00:00Z
    let fixed = Zone::resolve(&TimeZoneSpec::Fixed(-19_800)).expect("fixed");
    assert_eq!((fixed.civil(instant).hour, fixed.civil(instant).minute), (6, 30));
    // The tz database is optional on a machine; without it the zone is refused at start.
    match Zone::resolve(&TimeZoneSpec::Iana("Europe/Paris".into())) {
        Ok(paris) => {
            assert_eq!(paris.civil(instant).hour, 14, "CEST in July");
            let winter = SystemTime::UNIX_EPOCH + Duration::from_secs(1_704_110_400); // 2024-01-01T12:00:00Z
            assert_eq!(paris.civil(winter).hour, 13, "CET in January");
        }
        Err(e) => eprintln!("skipped: Europe/Paris: {e}"),
    }
    let e = Zone::resolve(&TimeZoneSpec::Iana("Nowhere/Atlantis".into())).expect_err("unknown zone");
    assert!(e.contains("Nowhere/Atlantis"), "{e}");
}
