//! Unit tests of index templates, calendar arithmetic, ISO weeks and times
//! read from JSON.

use super::*;

fn at(text: &str) -> SystemTime {
    parse_rfc3339(text).unwrap_or_else(|e| panic!("{e}"))
}

fn render(template: &str, time: &str) -> String {
    IndexTemplate::parse(template).unwrap_or_else(|e| panic!("{template}: {e}")).render(at(time))
}

#[test]
fn every_rotation_renders_in_utc() {
    let t = "2026-03-07T23:30:00-02:00"; // 2026-03-08T01:30Z
    assert_eq!(render("clicks", t), "clicks");
    assert_eq!(render("clicks-{yyyy.MM.dd.HH}", t), "clicks-2026.03.08.01");
    assert_eq!(render("clicks-{yyyy.MM.dd}", t), "clicks-2026.03.08");
    assert_eq!(render("clicks-{xxxx.ww}", t), "clicks-2026.10");
    assert_eq!(render("clicks-{yyyy-MM}", t), "clicks-2026-03");
    assert_eq!(render("{yyyy_MM}-clicks", t), "2026_03-clicks");
    let rotation = |s: &str| IndexTemplate::parse(s).map(|t| t.rotation()).expect("valid");
    assert_eq!(rotation("a"), Rotation::None);
    assert_eq!(rotation("a-{yyyy.MM.dd.HH}"), Rotation::Hour);
    assert_eq!(rotation("a-{yyyy.MM.dd}"), Rotation::Day);
    assert_eq!(rotation("a-{xxxx.ww}"), Rotation::Week);
    assert_eq!(rotation("a-{yyyy.MM}"), Rotation::Month);
}

#[test]
fn iso_weeks_at_year_boundaries() {
    // Known ISO-8601 weeks.
    assert_eq!(iso_week(2021, 1, 3), (2020, 53)); // Sunday after 2020's 53rd Thursday
    assert_eq!(iso_week(2021, 1, 4), (2021, 1));
    assert_eq!(iso_week(2024, 12, 30), (2025, 1)); // Monday of 2025-W01
    assert_eq!(iso_week(2026, 1, 1), (2026, 1)); // a Thursday
    assert_eq!(iso_week(2027, 1, 1), (2026, 53)); // a Friday: 2026 has 53 weeks
    assert_eq!(iso_week(2027, 1, 4), (2027, 1));
    assert_eq!(iso_week(2008, 12, 29), (2009, 1));
    assert_eq!(iso_week(2010, 1, 3), (2009, 53));
    assert_eq!(iso_week(2023, 6, 15), (2023, 24));
    assert_eq!(render("w-{xxxx.ww}", "2027-01-01T00:00:00Z"), "w-2026.53");
    assert_eq!(render("w-{xxxx.ww}", "2024-12-31T12:00:00Z"), "w-2025.01");
    // Every day of 400 years: weeks are 1..=53, consecutive days stay in the
    // week or move to the next, and every week starts on a Monday.
    let mut previous = iso_week(1999, 12, 31);
    for days in days_from_civil(2000, 1, 1)..days_from_civil(2400, 1, 1) {
        let (y, m, d) = civil_from_days(days);
        assert_eq!(days_from_civil(y, m, d), days);
        let week = iso_week(y, m, d);
        assert!((1..=53).contains(&week.1), "{y}-{m}-{d}: {week:?}");
        if iso_weekday(days) == 1 {
            let next = if previous.1 >= 52 && week.1 == 1 { (previous.0 + 1, 1) } else { (previous.0, previous.1 + 1) };
            assert_eq!(week, next, "{y}-{m}-{d}");
        } else {
            assert_eq!(week, previous, "{y}-{m}-{d}");
        }
        previous = week;
    }
}

#[test]
fn calendar_arithmetic_round_trips_including_before_1970() {
    assert_eq!(days_from_civil(1970, 1, 1), 0);
    assert_eq!(civil_from_days(-1), (1969, 12, 31));
    assert_eq!(civil_from_days(days_from_civil(2000, 2, 29)), (2000, 2, 29));
    assert_eq!(UtcTime::from_system_time(UNIX_EPOCH - Duration::from_secs(1)), UtcTime { year: 1969, month: 12, day: 31, hour: 23 });
    assert_eq!(render("old-{yyyy.MM.dd.HH}", "1969-07-20T20:17:40Z"), "old-1969.07.20.20");
}

#[test]
fn bad_templates_are_refused_with_the_reason() {
    for (template, needle) in [
        ("", "empty"),
        ("Clicks", "lower case"),
        ("clicks*", "must not contain"),
        ("a b", "must not contain"),
        ("-clicks", "must not start"),
        ("clicks-{yyyy.MM.dd", "without a closing"),
        ("clicks-}", "without a `{`"),
        ("clicks-{}", "empty"),
        ("c-{yyyy}-{MM}", "only one"),
        ("c-{YYYY}", "unknown date pattern token"),
        ("c-{yyyy.ww}", "xxxx"),
        ("c-{xxxx.MM}", "without `ww`"),
        ("c-{yyyy.dd}", "coarser"),
        ("c-{MM.dd}", "coarser"),
        ("c-{yyyy.yyyy}", "repeats"),
        (".", "not index names"),
    ] {
        match IndexTemplate::parse(template) {
            Ok(t) => panic!("{template:?} was accepted as {t:?}"),
            Err(message) => assert!(message.contains(needle), "{template:?}: {message}"),
        }
    }
    let long = "a".repeat(250) + "-{yyyy.MM}";
    assert!(IndexTemplate::parse(&long).expect_err("too long").contains("255"));
}

#[test]
fn times_from_json_fields() {
    use serde_json::json;
    let t = |v: serde_json::Value| time_from_json(&v);
    let millis = |time: SystemTime| time.duration_since(UNIX_EPOCH).map(|d| d.as_millis()).expect("after 1970");
    assert_eq!(millis(t(json!("2026-01-31T23:59:59Z")).expect("rfc3339")), 1_769_903_999_000);
    assert_eq!(millis(t(json!("2026-02-01T01:59:59.250+02:00")).expect("offset")), 1_769_903_999_250);
    assert_eq!(millis(t(json!("2026-01-31 23:59:59.123456789z")).expect("space, z")), 1_769_903_999_123);
    assert_eq!(millis(t(json!(1_769_903_999_000_u64)).expect("millis")), 1_769_903_999_000);
    assert_eq!(t(json!(-1000)).expect("before 1970"), UNIX_EPOCH - Duration::from_secs(1));
    for bad in [json!("yesterday"), json!("2026-02-30T00:00:00Z"), json!("2026-01-31T23:59:59"), json!(true), json!(null), json!({"a": 1})] {
        assert!(t(bad.clone()).is_err(), "{bad} was accepted");
    }
}
