//! Specification of the filter language: each test states one rule of its semantics or limits.

use super::*;
use serde_json::json;

fn doc(payload: Value) -> Value {
    json!({"event": "user.signed_up", "resource": "user", "resource_id": "u_1", "payload": payload})
}

fn check(filter: Value, payload: Value) -> bool {
    Filter::parse(&filter).expect("valid filter").matches(&doc(payload))
}

fn rejected_at(filter: Value) -> String {
    Filter::parse(&filter).expect_err("filter must be rejected").path
}

#[test]
fn spec_example_gte_on_sequence_step() {
    let filter = json!({"payload": {"sequence_step": {"$gte": 3}}});
    assert!(check(filter.clone(), json!({"sequence_step": 3})));
    assert!(check(filter.clone(), json!({"sequence_step": 4.5})));
    assert!(!check(filter.clone(), json!({"sequence_step": 2})));
    assert!(!check(filter, json!({})));
}

#[test]
fn nested_objects_match_by_structure() {
    let filter = json!({"event": "user.signed_up", "payload": {"plan": {"tier": "pro"}}});
    assert!(check(filter.clone(), json!({"plan": {"tier": "pro", "seats": 3}, "x": 1})));
    assert!(!check(filter.clone(), json!({"plan": {"tier": "free"}})));
    assert!(!check(filter.clone(), json!({"plan": "pro"})));
    assert!(!check(json!({"event": "user.deleted"}), json!({})));
    assert!(check(json!({}), json!(null)));
}

#[test]
fn primitives_mean_equality_and_numbers_compare_as_f64() {
    assert!(check(json!({"payload": {"n": 3}}), json!({"n": 3.0})));
    assert!(check(json!({"payload": {"ok": true, "v": null}}), json!({"ok": true, "v": null})));
    assert!(!check(json!({"payload": {"v": null}}), json!({})));
    assert!(!check(json!({"payload": {"n": "3"}}), json!({"n": 3})));
}

#[test]
fn filter_array_requires_document_array_to_contain_every_item() {
    let filter = json!({"payload": {"tags": ["vip", {"$startsWith": "eu-"}]}});
    assert!(check(filter.clone(), json!({"tags": ["eu-west", "x", "vip"]})));
    assert!(!check(filter.clone(), json!({"tags": ["vip"]})));
    assert!(!check(filter, json!({"tags": "vip"})));
}

#[test]
fn eq_and_neq_compare_deeply() {
    assert!(check(json!({"payload": {"a": {"$eq": {"b": [1, 2]}}}}), json!({"a": {"b": [1.0, 2]}})));
    assert!(!check(json!({"payload": {"a": {"$eq": [1, 2]}}}), json!({"a": [2, 1]})));
    assert!(check(json!({"payload": {"s": {"$neq": "cancelled"}}}), json!({"s": "active"})));
    assert!(!check(json!({"payload": {"s": {"$neq": "cancelled"}}}), json!({"s": "cancelled"})));
    assert!(check(json!({"payload": {"s": {"$neq": "cancelled"}}}), json!({})));
}

#[test]
fn gt_gte_lt_lte_compare_numbers() {
    let p = json!({"n": 5});
    assert!(check(json!({"payload": {"n": {"$gt": 4}}}), p.clone()));
    assert!(!check(json!({"payload": {"n": {"$gt": 5}}}), p.clone()));
    assert!(check(json!({"payload": {"n": {"$gte": 5.0}}}), p.clone()));
    assert!(check(json!({"payload": {"n": {"$lt": 6}}}), p.clone()));
    assert!(!check(json!({"payload": {"n": {"$lt": 5}}}), p.clone()));
    assert!(check(json!({"payload": {"n": {"$lte": 5}}}), p));
}

#[test]
fn ordering_compares_strings_lexicographically_and_never_across_types() {
    let filter = json!({"payload": {"at": {"$gte": "2024-01-01T00:00:00Z", "$lt": "2025-01-01T00:00:00Z"}}});
    assert!(check(filter.clone(), json!({"at": "2024-06-30T12:00:00Z"})));
    assert!(!check(filter, json!({"at": "2025-02-01T00:00:00Z"})));
    assert!(!check(json!({"payload": {"n": {"$gt": 1}}}), json!({"n": "9"})));
    assert!(!check(json!({"payload": {"n": {"$lt": "z"}}}), json!({"n": 1})));
}

#[test]
fn in_and_nin_test_membership() {
    let filter = json!({"payload": {"plan": {"$in": ["pro", "team"]}}});
    assert!(check(filter.clone(), json!({"plan": "team"})));
    assert!(!check(filter, json!({"plan": "free"})));
    assert!(check(json!({"payload": {"n": {"$in": [1, 2]}}}), json!({"n": 2.0})));
    assert!(check(json!({"payload": {"tags": {"$in": ["a", "b"]}}}), json!({"tags": ["z", "b"]})));
    assert!(check(json!({"payload": {"plan": {"$nin": ["pro"]}}}), json!({"plan": "free"})));
    assert!(!check(json!({"payload": {"plan": {"$nin": ["pro"]}}}), json!({"plan": "pro"})));
    assert!(check(json!({"payload": {"plan": {"$nin": ["pro"]}}}), json!({})));
}

#[test]
fn in_with_a_string_means_contains() {
    let filter = json!({"payload": {"tags": {"$in": "vip"}}});
    assert!(check(filter.clone(), json!({"tags": ["new", "vip"]})));
    assert!(!check(filter, json!({"tags": ["new"]})));
    assert!(check(json!({"payload": {"email": {"$in": "@acme."}}}), json!({"email": "jo@acme.io"})));
    assert!(check(json!({"payload": {"tags": {"$nin": "spam"}}}), json!({"tags": ["ok"]})));
}

#[test]
fn starts_with_and_ends_with_match_strings_only() {
    assert!(check(json!({"payload": {"e": {"$startsWith": "alex@"}}}), json!({"e": "alex@northstar.io"})));
    assert!(check(json!({"payload": {"e": {"$endsWith": ".io"}}}), json!({"e": "alex@northstar.io"})));
    assert!(!check(json!({"payload": {"e": {"$endsWith": ".com"}}}), json!({"e": "alex@northstar.io"})));
    assert!(!check(json!({"payload": {"e": {"$startsWith": "1"}}}), json!({"e": 12})));
}

#[test]
fn exist_tests_presence_and_null_counts_as_present() {
    assert!(check(json!({"payload": {"e": {"$exist": true}}}), json!({"e": null})));
    assert!(!check(json!({"payload": {"e": {"$exist": true}}}), json!({})));
    assert!(check(json!({"payload": {"e": {"$exist": false}}}), json!({})));
    assert!(!check(json!({"payload": {"e": {"$exist": false}}}), json!({"e": 1})));
}

#[test]
fn several_operators_in_one_object_must_all_hold() {
    let filter = json!({"payload": {"n": {"$gt": 1, "$lt": 3}}});
    assert!(check(filter.clone(), json!({"n": 2})));
    assert!(!check(filter, json!({"n": 3})));
}

#[test]
fn and_or_not_combine_filters_at_the_same_level() {
    let filter = json!({"payload": {"$or": [{"plan": "pro"}, {"seats": {"$gte": 10}}], "$not": {"region": "eu"}}});
    assert!(check(filter.clone(), json!({"plan": "pro", "region": "us"})));
    assert!(check(filter.clone(), json!({"plan": "free", "seats": 12})));
    assert!(!check(filter.clone(), json!({"plan": "free", "seats": 2})));
    assert!(!check(filter, json!({"plan": "pro", "region": "eu"})));
    let both = json!({"$and": [{"payload": {"a": 1}}, {"payload": {"b": 2}}]});
    assert!(check(both.clone(), json!({"a": 1, "b": 2})));
    assert!(!check(both, json!({"a": 1})));
}

#[test]
fn rejects_non_object_filters() {
    assert_eq!(rejected_at(json!([{"event": "x"}])), "");
    assert_eq!(rejected_at(json!("x")), "");
}

#[test]
fn rejects_unknown_operators_with_their_path() {
    let err = Filter::parse(&json!({"payload": {"n": {"$gtt": 1}}})).unwrap_err();
    assert_eq!(err.path, "payload.n.$gtt");
    assert_eq!(err.to_string(), "invalid filter at `payload.n.$gtt`: unknown operator `$gtt`");
}

#[test]
fn rejects_wrong_operand_types_with_their_path() {
    assert_eq!(rejected_at(json!({"payload": {"sequence_step": {"$gte": true}}})), "payload.sequence_step.$gte");
    assert_eq!(rejected_at(json!({"payload": {"n": {"$in": 3}}})), "payload.n.$in");
    assert_eq!(rejected_at(json!({"payload": {"n": {"$nin": {}}}})), "payload.n.$nin");
    assert_eq!(rejected_at(json!({"payload": {"e": {"$exist": "yes"}}})), "payload.e.$exist");
    assert_eq!(rejected_at(json!({"payload": {"e": {"$startsWith": 1}}})), "payload.e.$startsWith");
    assert_eq!(rejected_at(json!({"payload": {"e": {"$endsWith": null}}})), "payload.e.$endsWith");
    assert_eq!(rejected_at(json!({"$not": "x"})), "$not");
    assert_eq!(rejected_at(json!({"$and": {"a": 1}})), "$and");
    assert_eq!(rejected_at(json!({"$or": [{"a": 1}, 2]})), "$or[1]");
    assert_eq!(rejected_at(json!({"tags": [1, {"$bad": 1}]})), "tags[1].$bad");
}

#[test]
fn rejects_empty_and_or() {
    assert_eq!(rejected_at(json!({"payload": {"$and": []}})), "payload.$and");
    assert_eq!(rejected_at(json!({"$or": []})), "$or");
}

#[test]
fn rejects_nesting_deeper_than_32() {
    let nest = |levels: usize| (0..levels).fold(json!(1), |inner, _| json!({"a": inner}));
    assert!(Filter::parse(&nest(32)).is_ok());
    let err = Filter::parse(&nest(33)).unwrap_err();
    assert!(err.message.contains("deeper than 32"), "{err}");
    let deep_operand = json!({"a": {"$eq": nest(40)}});
    assert_eq!(rejected_at(deep_operand), "a.$eq");
}

#[test]
fn never_panics_on_odd_documents() {
    let filter = Filter::parse(&json!({"payload": {"a": {"b": {"$gt": 1}}, "t": ["x"]}})).unwrap();
    let docs = [json!(null), json!(3), json!([1, 2]), json!({"payload": "s"}), json!({"payload": {"a": [{"b": 2}]}})];
    assert!(docs.iter().all(|d| !filter.matches(d)));
}

// Limits: refused at parse, with the path of the fault.

#[test]
fn rejects_filters_larger_than_64_kib_serialized() {
    let big = |len: usize| json!({"payload": {"note": "x".repeat(len)}});
    assert!(Filter::parse(&big(MAX_FILTER_BYTES - 100)).is_ok());
    let err = Filter::parse(&big(MAX_FILTER_BYTES)).unwrap_err();
    assert_eq!(err.path, "");
    assert!(err.message.contains("larger than 65536 bytes"), "{err}");
}

#[test]
fn in_and_nin_lists_hold_at_most_1000_items() {
    let list = |n: usize| Value::Array((0..n).map(|i| json!(i)).collect());
    assert!(Filter::parse(&json!({"payload": {"n": {"$in": list(MAX_LIST_ITEMS)}}})).is_ok());
    let err = Filter::parse(&json!({"payload": {"n": {"$in": list(200_000)}}})).unwrap_err();
    assert_eq!(err.path, "payload.n.$in");
    assert_eq!(err.message, "$in lists at most 1000 items, got 200000");
    assert_eq!(rejected_at(json!({"$or": [{"payload": {"n": {"$nin": list(1001)}}}]})), "$or[0].payload.n.$nin");
}

// Evaluation cost: bounded by a step budget, so a filter never stalls ingest.

fn thousand_item_in() -> Filter {
    let list: Vec<Value> = (0..1000).map(|i| json!(format!("sku-{i}"))).collect();
    Filter::parse(&json!({"payload": {"skus": {"$in": list}}})).unwrap()
}

#[test]
fn a_full_in_list_against_a_huge_payload_array_costs_one_lookup_per_item() {
    let skus: Vec<Value> = (0..50_000).map(|i| json!(format!("other-{i}"))).collect();
    let miss = doc(json!({"skus": skus}));
    // 50,000 document items, each one hash lookup: far below the budget, not 50M comparisons.
    assert_eq!(thousand_item_in().evaluate(&miss, 60_000), Ok(false));

    let mut skus = skus;
    skus.push(json!("sku-999"));
    assert_eq!(thousand_item_in().evaluate(&doc(json!({"skus": skus})), 60_000), Ok(true));
}

#[test]
fn indexed_in_lists_keep_the_equality_rules() {
    assert!(check(json!({"payload": {"n": {"$in": [3, "a", null, true]}}}), json!({"n": 3.0})));
    assert!(check(json!({"payload": {"n": {"$in": [0]}}}), json!({"n": -0.0})));
    assert!(check(json!({"payload": {"n": {"$in": [null]}}}), json!({"n": null})));
    assert!(!check(json!({"payload": {"n": {"$in": ["3"]}}}), json!({"n": 3})));
    assert!(check(json!({"payload": {"n": {"$in": [{"a": [1]}]}}}), json!({"n": [{"a": [1.0]}]})));
    assert!(!check(json!({"payload": {"n": {"$in": [{"a": [1]}]}}}), json!({"n": {"a": [2]}})));
}

#[test]
fn a_filter_that_exhausts_its_budget_does_not_match_even_under_not() {
    // Each of 1,000 filter objects is found only after 49,000 other payload items: 49M pairs.
    let wanted: Vec<Value> = (0..1000).map(|i| json!({"id": i, "kind": "x"})).collect();
    let costly = json!({"payload": {"items": wanted}});
    let decoys = (1..=49_000).map(|i| json!({"id": -i, "kind": "x"}));
    let items: Vec<Value> = decoys.chain(wanted.iter().cloned()).collect();
    let heavy = doc(json!({"items": items}));

    let filter = Filter::parse(&costly).unwrap();
    assert_eq!(filter.evaluate(&heavy, MAX_STEPS), Err(Exhausted));
    assert!(!filter.matches(&heavy));

    let negated = Filter::parse(&json!({"$not": costly})).unwrap();
    assert!(!negated.matches(&heavy), "running out of budget must not flip into a match");
}

#[test]
fn the_step_budget_is_enough_for_ordinary_filters_on_large_payloads() {
    let filter = json!({"event": "user.signed_up", "payload": {"plan": {"$in": ["pro", "team"]},
        "seats": {"$gte": 3}, "tags": {"$in": "vip"}, "$not": {"region": "eu"}}});
    let tags: Vec<Value> = (0..50_000).map(|i| json!(format!("t{i}"))).chain([json!("vip")]).collect();
    let payload = json!({"plan": "team", "seats": 5, "region": "us", "tags": tags});
    assert_eq!(Filter::parse(&filter).unwrap().evaluate(&doc(payload), MAX_STEPS), Ok(true));
}
