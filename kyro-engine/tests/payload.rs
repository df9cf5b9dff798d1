//! Payloads, filters and the payload index: what each condition means, what
//! validation refuses (and where it says the fault is), that the byte formats
//! round-trip and refuse corruption, and that the index computes exactly the
//! points the direct evaluation accepts.

use kyro_engine::payload::{
    Filter, FilterValue, Payload, PayloadIndex, PayloadValue, Range, RoaringBitmap,
    MAX_ENCODED_BYTES, MAX_FIELDS, MAX_FILTER_DEPTH, MAX_IN_VALUES, MAX_LIST_ITEMS,
    MAX_STRING_BYTES,
};
use kyro_engine::EngineError;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const TWO_POW_53: i64 = 1 << 53;

/// The points among `payloads` (point id = position) that `filter` matches by
/// direct evaluation, restricted to `universe`.
fn matching(filter: &Filter, payloads: &[Payload], universe: &RoaringBitmap) -> RoaringBitmap {
    universe
        .iter()
        .filter(|&point| filter.matches(&payloads[point as usize]))
        .collect()
}

fn indexed(payloads: &[Payload]) -> PayloadIndex {
    let mut index = PayloadIndex::new();
    for (point, payload) in payloads.iter().enumerate() {
        index.insert(point as u32, payload);
    }
    index
}

fn all_points(payloads: &[Payload]) -> RoaringBitmap {
    (0..payloads.len() as u32).collect()
}

/// Evaluates `filter` with the index and directly, and checks they agree.
fn check_agreement(
    index: &PayloadIndex,
    filter: &Filter,
    payloads: &[Payload],
    universe: &RoaringBitmap,
) -> RoaringBitmap {
    let want = matching(filter, payloads, universe);
    let got = index.evaluate(filter, universe);
    assert_eq!(got, want, "index and matches() disagree on {filter:?}");
    assert_eq!(index.estimate(filter, universe), want.len());
    got
}

fn invalid_payload_field(payload: &Payload) -> String {
    match payload.validate() {
        Err(EngineError::InvalidPayload { field, .. }) => field,
        other => panic!("expected InvalidPayload, got {other:?}"),
    }
}

fn invalid_filter_path(filter: &Filter) -> String {
    match filter.validate() {
        Err(EngineError::InvalidFilter { path, .. }) => path,
        other => panic!("expected InvalidFilter, got {other:?}"),
    }
}

// ---- what conditions mean -------------------------------------------------

fn shop() -> Vec<Payload> {
    vec![
        Payload::new()
            .with("name", "anvil")
            .with("tags", vec!["iron", "heavy"])
            .with("price", 100_i64)
            .with("in_stock", true),
        Payload::new()
            .with("name", "balloon")
            .with("tags", vec!["red", "light"])
            .with("price", 2.5)
            .with("in_stock", false),
        Payload::new()
            .with("name", "cannon")
            .with("tags", vec!["iron"])
            .with("price", 99.99),
        Payload::new().with("name", "dynamite"),
    ]
}

fn points(filter: &Filter) -> Vec<u32> {
    let payloads = shop();
    let index = indexed(&payloads);
    check_agreement(&index, filter, &payloads, &all_points(&payloads))
        .iter()
        .collect()
}

#[test]
fn eq_on_a_list_field_matches_lists_containing_the_value() {
    assert_eq!(points(&Filter::eq("tags", "iron")), [0, 2]);
    assert_eq!(points(&Filter::eq("tags", "light")), [1]);
    assert_eq!(points(&Filter::is_in("tags", ["heavy", "red"])), [0, 1]);
}

#[test]
fn eq_compares_integers_and_floats_as_numbers() {
    assert_eq!(points(&Filter::eq("price", 100.0)), [0]);
    assert_eq!(points(&Filter::eq("price", 2.5)), [1]);
    assert_eq!(points(&Filter::eq("price", 2_i64)), Vec::<u32>::new());
    assert_eq!(points(&Filter::eq("in_stock", false)), [1]);
    // A string never equals a number, nor a bool its name.
    assert_eq!(points(&Filter::eq("price", "100")), Vec::<u32>::new());
    assert_eq!(points(&Filter::eq("in_stock", "true")), Vec::<u32>::new());
}

#[test]
fn integers_beyond_2_pow_53_are_told_apart_from_their_float_neighbours() {
    let payloads = vec![
        Payload::new().with("n", TWO_POW_53),
        Payload::new().with("n", TWO_POW_53 + 1),
        Payload::new().with("n", TWO_POW_53 as f64),
    ];
    let index = indexed(&payloads);
    let all = all_points(&payloads);
    let eq = |value: FilterValue| -> Vec<u32> {
        let filter = Filter::eq("n", value);
        check_agreement(&index, &filter, &payloads, &all)
            .iter()
            .collect()
    };
    assert_eq!(eq(FilterValue::Integer(TWO_POW_53 + 1)), [1]);
    assert_eq!(eq(FilterValue::Integer(TWO_POW_53)), [0, 2]);
    assert_eq!(eq(FilterValue::Float(TWO_POW_53 as f64)), [0, 2]);
    let above = Filter::range("n", Range::new().gt(TWO_POW_53 as f64));
    assert_eq!(
        check_agreement(&index, &above, &payloads, &all)
            .iter()
            .collect::<Vec<_>>(),
        [1]
    );
}

#[test]
fn range_on_strings_compares_bytes_lexicographically() {
    assert_eq!(
        points(&Filter::range("name", Range::new().gte("b").lt("d"))),
        [1, 2]
    );
    assert_eq!(
        points(&Filter::range("name", Range::new().gt("cannon"))),
        [3]
    );
    // A list is in range when any element is.
    assert_eq!(
        points(&Filter::range("tags", Range::new().gte("r").lte("s"))),
        [1]
    );
    assert_eq!(
        points(&Filter::range("name", Range::new().gt("b").lt("a"))),
        Vec::<u32>::new()
    );
}

#[test]
fn range_mixes_integer_and_float_bounds() {
    assert_eq!(
        points(&Filter::range("price", Range::new().gt(2_i64).lt(99.995))),
        [1, 2]
    );
    assert_eq!(
        points(&Filter::range(
            "price",
            Range::new().gte(99.99).lte(100_i64)
        )),
        [0, 2]
    );
    assert_eq!(
        points(&Filter::range("price", Range::new().gt(100_i64))),
        Vec::<u32>::new()
    );
    // A number range never matches strings.
    assert_eq!(
        points(&Filter::range("name", Range::new().gt(0_i64))),
        Vec::<u32>::new()
    );
}

#[test]
fn exists_matches_points_having_the_field_whatever_its_value() {
    assert_eq!(points(&Filter::exists("price")), [0, 1, 2]);
    assert_eq!(points(&Filter::exists("in_stock")), [0, 1]);
    assert_eq!(points(&Filter::exists("colour")), Vec::<u32>::new());
}

#[test]
fn not_includes_points_that_lack_the_field() {
    assert_eq!(
        points(&Filter::negate(Filter::eq("in_stock", true))),
        [1, 2, 3]
    );
    assert_eq!(
        points(&Filter::negate(Filter::exists("tags"))),
        [3],
        "not is relative to the universe"
    );
}

#[test]
fn and_or_combine_conditions() {
    let iron_under_100 = Filter::and([
        Filter::eq("tags", "iron"),
        Filter::range("price", Range::new().lt(100_i64)),
    ]);
    assert_eq!(points(&iron_under_100), [2]);
    let light_or_unpriced = Filter::or([
        Filter::eq("tags", "light"),
        Filter::negate(Filter::exists("price")),
    ]);
    assert_eq!(points(&light_or_unpriced), [1, 3]);
}

#[test]
fn evaluation_stays_within_the_universe() {
    let payloads = shop();
    let index = indexed(&payloads);
    let universe: RoaringBitmap = [1, 2, 3].into_iter().collect();
    let got = check_agreement(
        &index,
        &Filter::negate(Filter::eq("tags", "iron")),
        &payloads,
        &universe,
    );
    assert_eq!(got.iter().collect::<Vec<_>>(), [1, 3]);
}

// ---- payload rules ----------------------------------------------------------

#[test]
fn payload_merge_overwrites_named_fields_and_keeps_the_rest() {
    let mut stored = Payload::new().with("a", 1_i64).with("b", "x");
    stored.merge(Payload::new().with("b", "y").with("c", true));
    assert_eq!(
        stored,
        Payload::new()
            .with("a", 1_i64)
            .with("b", "y")
            .with("c", true)
    );
}

#[test]
fn payload_error_names_the_list_element_at_fault() {
    let mut tags = vec!["ok".to_owned(); 5];
    tags[3] = "x".repeat(MAX_STRING_BYTES + 1);
    let payload = Payload::new().with("tags", tags);
    assert_eq!(invalid_payload_field(&payload), "payload.tags[3]");
}

#[test]
fn non_finite_floats_are_refused_naming_the_field() {
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let payload = Payload::new().with("ok", 1.5).with("price", bad);
        assert_eq!(invalid_payload_field(&payload), "payload.price");
    }
    assert_eq!(Payload::new().with("price", -0.0).validate(), Ok(()));
}

#[test]
fn payload_limits_are_enforced() {
    let too_long = Payload::new().with("name", "x".repeat(MAX_STRING_BYTES + 1));
    assert_eq!(invalid_payload_field(&too_long), "payload.name");

    let long_list = Payload::new().with("tags", vec!["t"; MAX_LIST_ITEMS + 1]);
    assert_eq!(invalid_payload_field(&long_list), "payload.tags");

    let many: Payload = (0..=MAX_FIELDS)
        .map(|i| (format!("f{i}"), PayloadValue::Integer(i as i64)))
        .collect();
    assert_eq!(invalid_payload_field(&many), "payload");

    // Each field within limits, the whole over MAX_ENCODED_BYTES.
    let oversize: Payload = (0..20)
        .map(|i| (format!("f{i}"), PayloadValue::from("x".repeat(4000))))
        .collect();
    assert!(oversize.encoded_len() > MAX_ENCODED_BYTES);
    assert_eq!(invalid_payload_field(&oversize), "payload");

    for bad_key in ["", "has space", "ünï", &"k".repeat(129)] {
        let payload = Payload::new().with(bad_key, 1_i64);
        assert_eq!(invalid_payload_field(&payload), "payload", "{bad_key:?}");
    }
    let fine = Payload::new()
        .with("a.b-c_D9", 1_i64)
        .with("k".repeat(128), "v");
    assert_eq!(fine.validate(), Ok(()));
}

// ---- byte encodings ---------------------------------------------------------

fn sample_payload() -> Payload {
    Payload::new()
        .with("name", "anvil ⚒")
        .with("tags", vec!["iron", "", "heavy"])
        .with("count", i64::MIN)
        .with("price", -0.0)
        .with("ratio", 1e-300)
        .with("in_stock", true)
        .with("empty", Vec::<String>::new())
}

#[test]
fn payload_encoding_round_trips() {
    let payload = sample_payload();
    let bytes = payload.encode();
    assert_eq!(bytes.len(), payload.encoded_len());
    let decoded = Payload::decode(&bytes).expect("decode");
    assert_eq!(decoded, payload);
    assert_eq!(decoded.encode(), bytes);
    match decoded.get("price") {
        Some(PayloadValue::Float(zero)) => assert!(zero.is_sign_negative()),
        other => panic!("price decoded as {other:?}"),
    }
    assert_eq!(
        Payload::decode(&Payload::new().encode()),
        Ok(Payload::new())
    );
}

#[test]
fn every_truncation_of_an_encoded_payload_is_refused() {
    let bytes = sample_payload().encode();
    for len in 0..bytes.len() {
        assert!(
            matches!(
                Payload::decode(&bytes[..len]),
                Err(EngineError::InvalidPayload { .. })
            ),
            "prefix of {len} bytes was accepted"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(Payload::decode(&longer).is_err(), "trailing byte accepted");
}

#[test]
fn corrupt_payload_bytes_give_errors_never_panics() {
    let bytes = sample_payload().encode();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for _ in 0..20_000 {
        let mut corrupt = bytes.clone();
        for _ in 0..rng.random_range(1..4) {
            let at = rng.random_range(0..corrupt.len());
            corrupt[at] = rng.random();
        }
        // Either refused or decoded to some well-formed payload; never a panic.
        if let Ok(payload) = Payload::decode(&corrupt) {
            assert_eq!(Payload::decode(&payload.encode()), Ok(payload));
        }
    }
    for _ in 0..20_000 {
        let len = rng.random_range(0..64);
        let garbage: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        let _ = Payload::decode(&garbage);
    }
    // A huge declared count must not be trusted for allocation.
    let mut huge = vec![1u8];
    huge.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(Payload::decode(&huge).is_err());
    assert!(
        Payload::decode(&[9, 0, 0, 0, 0]).is_err(),
        "unknown version"
    );
}

#[test]
fn equal_filters_have_equal_canonical_bytes() {
    let filter = || {
        Filter::and([
            Filter::eq("tags", "iron"),
            Filter::range("price", Range::new().gte(1_i64).lt(2.5)),
            Filter::negate(Filter::is_in("colour", ["red", "blue"])),
        ])
    };
    assert_eq!(filter().encode(), filter().encode());

    let reordered = Filter::and([
        Filter::negate(Filter::is_in("colour", ["blue", "red", "blue"])),
        Filter::range("price", Range::new().gte(1_i64).lt(2.5)),
        Filter::eq("tags", "iron"),
    ]);
    assert_eq!(reordered.encode(), filter().encode());
    assert_eq!(
        Filter::eq("x", -0.0).encode(),
        Filter::eq("x", 0.0).encode()
    );

    let different = [
        Filter::eq("tags", "iron"),
        Filter::eq("tags", "iro"),
        Filter::eq("tag", "iron"),
        Filter::range("price", Range::new().gt(1_i64)),
        Filter::range("price", Range::new().gte(1_i64)),
        Filter::range("price", Range::new().lt(1_i64)),
        Filter::eq("price", 1_i64),
        Filter::eq("price", 1.0),
        Filter::or([Filter::eq("tags", "iron")]),
        Filter::negate(Filter::eq("tags", "iron")),
        Filter::exists("tags"),
    ];
    let mut encodings: Vec<Vec<u8>> = different.iter().map(Filter::encode).collect();
    encodings.sort();
    encodings.dedup();
    assert_eq!(encodings.len(), different.len());
}

// ---- filter validation -------------------------------------------------------

#[test]
fn filter_errors_name_the_path_to_the_fault() {
    let bad_bound = Filter::and([
        Filter::exists("a"),
        Filter::range("price", Range::new().gte(f64::NAN)),
    ]);
    assert_eq!(invalid_filter_path(&bad_bound), "filter.and[1].range.gte");

    let bad_value = Filter::or([
        Filter::exists("a"),
        Filter::negate(Filter::is_in(
            "x",
            [FilterValue::Integer(1), FilterValue::Float(f64::NAN)],
        )),
    ]);
    assert_eq!(
        invalid_filter_path(&bad_value),
        "filter.or[1].not.in.values[1]"
    );

    assert_eq!(
        invalid_filter_path(&Filter::eq("bad key", 1_i64)),
        "filter.eq.key"
    );
    assert_eq!(invalid_filter_path(&Filter::and([])), "filter.and");
    assert_eq!(
        invalid_filter_path(&Filter::is_in("x", Vec::<i64>::new())),
        "filter.in.values"
    );
    assert_eq!(
        invalid_filter_path(&Filter::is_in("x", 0..MAX_IN_VALUES as i64 + 1)),
        "filter.in.values"
    );
    assert_eq!(
        invalid_filter_path(&Filter::range("x", Range::new())),
        "filter.range"
    );
    assert_eq!(
        invalid_filter_path(&Filter::range("x", Range::new().gt(true))),
        "filter.range.gt"
    );
    assert_eq!(
        invalid_filter_path(&Filter::range("x", Range::new().gt(1_i64).lt("z"))),
        "filter.range.lt"
    );
    assert_eq!(
        invalid_filter_path(&Filter::eq("x", "s".repeat(MAX_STRING_BYTES + 1))),
        "filter.eq.value"
    );
    assert_eq!(
        Filter::range("x", Range::new().gt(f64::NEG_INFINITY).lt(3_i64)).validate(),
        Ok(())
    );
}

fn nested(depth: usize) -> Filter {
    let mut filter = Filter::exists("a");
    for _ in 1..depth {
        filter = Filter::negate(filter);
    }
    filter
}

#[test]
fn filters_nested_deeper_than_the_limit_are_refused() {
    assert_eq!(nested(MAX_FILTER_DEPTH).validate(), Ok(()));
    let path = invalid_filter_path(&nested(MAX_FILTER_DEPTH + 1));
    assert_eq!(path, format!("filter{}", ".not".repeat(MAX_FILTER_DEPTH)));
}

#[test]
fn filters_with_too_many_conditions_are_refused() {
    let wide = |n: usize| Filter::or((0..n).map(|i| Filter::eq("a", i as i64)));
    assert_eq!(wide(1023).validate(), Ok(()), "1023 conditions + the or");
    assert_eq!(invalid_filter_path(&wide(1024)), "filter.or[1023]");
}

// ---- the index agrees with the definition --------------------------------------

const WORDS: [&str; 8] = ["red", "green", "blue", "", "alpha", "beta", "Zeta", "é"];
const INTEGERS: [i64; 13] = [
    0,
    1,
    -1,
    42,
    -42,
    TWO_POW_53 - 1,
    TWO_POW_53,
    TWO_POW_53 + 1,
    -TWO_POW_53,
    -TWO_POW_53 - 1,
    i64::MAX,
    i64::MIN,
    i64::MAX - 1,
];
const FLOATS: [f64; 14] = [
    0.0,
    -0.0,
    0.5,
    -0.5,
    1.0,
    -1.0,
    42.0,
    TWO_POW_53 as f64,
    (TWO_POW_53 + 2) as f64,
    -(TWO_POW_53 as f64),
    9.223372036854776e18,
    -9.223372036854776e18,
    1e300,
    -1e300,
];
const KEYS: [&str; 6] = ["color", "tags", "price", "count", "flag", "mixed"];

fn random_integer(rng: &mut ChaCha8Rng) -> i64 {
    if rng.random_bool(0.5) {
        *INTEGERS.choose(rng).unwrap_or(&0)
    } else {
        rng.random_range(-5..=5)
    }
}

fn random_float(rng: &mut ChaCha8Rng) -> f64 {
    if rng.random_bool(0.5) {
        *FLOATS.choose(rng).unwrap_or(&0.0)
    } else {
        // Halves, so that some floats equal integers and some fall between.
        f64::from(rng.random_range(-10..=10)) / 2.0
    }
}

fn random_word(rng: &mut ChaCha8Rng) -> String {
    WORDS.choose(rng).unwrap_or(&"").to_string()
}

fn random_value(rng: &mut ChaCha8Rng, key: &str) -> PayloadValue {
    // Each field mostly has one type, sometimes another; "mixed" any.
    let natural = match key {
        "color" => 0,
        "tags" => 4,
        "price" => 2,
        "count" => 1,
        "flag" => 3,
        _ => rng.random_range(0..5),
    };
    let kind = if rng.random_bool(0.85) {
        natural
    } else {
        rng.random_range(0..5)
    };
    match kind {
        0 => PayloadValue::String(random_word(rng)),
        1 => PayloadValue::Integer(random_integer(rng)),
        2 => PayloadValue::Float(random_float(rng)),
        3 => PayloadValue::Bool(rng.random()),
        _ => PayloadValue::StringList(
            (0..rng.random_range(0..4))
                .map(|_| random_word(rng))
                .collect(),
        ),
    }
}

fn random_payload(rng: &mut ChaCha8Rng) -> Payload {
    let mut payload = Payload::new();
    for key in KEYS {
        if rng.random_bool(0.7) {
            payload.insert(key, random_value(rng, key));
        }
    }
    payload
}

fn random_key(rng: &mut ChaCha8Rng) -> String {
    if rng.random_bool(0.05) {
        "absent".to_owned()
    } else {
        KEYS.choose(rng).unwrap_or(&"color").to_string()
    }
}

fn random_scalar(rng: &mut ChaCha8Rng) -> FilterValue {
    match rng.random_range(0..4) {
        0 => FilterValue::String(random_word(rng)),
        1 => FilterValue::Integer(random_integer(rng)),
        2 => FilterValue::Float(random_float(rng)),
        _ => FilterValue::Bool(rng.random()),
    }
}

fn random_range(rng: &mut ChaCha8Rng) -> Range {
    let strings = rng.random_bool(0.3);
    let bound = |rng: &mut ChaCha8Rng| -> Option<FilterValue> {
        if !rng.random_bool(0.5) {
            None
        } else if strings {
            Some(FilterValue::String(random_word(rng)))
        } else if rng.random_bool(0.5) {
            Some(FilterValue::Integer(random_integer(rng)))
        } else {
            Some(FilterValue::Float(random_float(rng)))
        }
    };
    let mut range = Range {
        gt: bound(rng),
        gte: bound(rng),
        lt: bound(rng),
        lte: bound(rng),
    };
    if range == Range::new() {
        range.gte = Some(if strings {
            FilterValue::String(random_word(rng))
        } else {
            FilterValue::Integer(random_integer(rng))
        });
    }
    range
}

fn random_filter(rng: &mut ChaCha8Rng, depth: usize) -> Filter {
    let leaf = depth >= 4 || rng.random_bool(0.45);
    if leaf {
        let key = random_key(rng);
        return match rng.random_range(0..4) {
            0 => Filter::Eq {
                key,
                value: random_scalar(rng),
            },
            1 => Filter::In {
                key,
                values: (0..rng.random_range(1..5))
                    .map(|_| random_scalar(rng))
                    .collect(),
            },
            2 => Filter::Range {
                key,
                range: random_range(rng),
            },
            _ => Filter::Exists { key },
        };
    }
    match rng.random_range(0..3) {
        0 => Filter::And(
            (0..rng.random_range(1..4))
                .map(|_| random_filter(rng, depth + 1))
                .collect(),
        ),
        1 => Filter::Or(
            (0..rng.random_range(1..4))
                .map(|_| random_filter(rng, depth + 1))
                .collect(),
        ),
        _ => Filter::negate(random_filter(rng, depth + 1)),
    }
}

#[test]
fn index_agrees_with_direct_evaluation_through_upserts_and_removes() {
    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    const POINTS: usize = 3_000;
    let mut payloads: Vec<Payload> = (0..POINTS).map(|_| random_payload(&mut rng)).collect();
    for payload in &payloads {
        assert_eq!(payload.validate(), Ok(()));
    }
    let mut index = indexed(&payloads);
    let all = all_points(&payloads);
    let filters: Vec<Filter> = (0..300).map(|_| random_filter(&mut rng, 1)).collect();
    for filter in &filters {
        assert_eq!(filter.validate(), Ok(()), "{filter:?}");
    }

    let check_all = |index: &PayloadIndex, payloads: &[Payload], rng: &mut ChaCha8Rng| {
        let subset: RoaringBitmap = all.iter().filter(|_| rng.random_bool(0.3)).collect();
        let mut nonempty = 0;
        for filter in &filters {
            if !check_agreement(index, filter, payloads, &all).is_empty() {
                nonempty += 1;
            }
            check_agreement(index, filter, payloads, &subset);
        }
        // The filters must say something: neither all empty nor all full.
        assert!(
            nonempty > filters.len() / 4,
            "only {nonempty} filters match anything"
        );
    };
    check_all(&index, &payloads, &mut rng);

    // Upserts, removes (payload left empty) and re-inserts.
    for _ in 0..2_000 {
        let point = rng.random_range(0..POINTS);
        let new = if rng.random_bool(0.2) {
            Payload::new()
        } else if rng.random_bool(0.5) {
            random_payload(&mut rng)
        } else {
            let mut merged = payloads[point].clone();
            merged.merge(random_payload(&mut rng));
            merged
        };
        index.update(point as u32, &payloads[point], &new);
        payloads[point] = new;
    }
    check_all(&index, &payloads, &mut rng);
    assert!(
        index == indexed(&payloads),
        "after upserts the index differs from one built afresh (stale or empty entries)"
    );

    // Removing every payload leaves nothing behind.
    for (point, payload) in payloads.iter().enumerate() {
        index.remove(point as u32, payload);
    }
    assert_eq!(index.memory_bytes(), 0, "bitmap entries leaked");
    for filter in &filters {
        let empty: Vec<Payload> = vec![Payload::new(); POINTS];
        check_agreement(&index, filter, &empty, &all);
    }
}
