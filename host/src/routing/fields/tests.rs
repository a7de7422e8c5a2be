//! Specification of field templates: rendering, typing, and the limits every render obeys.

use super::*;
use serde_json::json;

fn context(payload: Value) -> Value {
    json!({
        "event": "user.signed_up", "resource": "user", "resource_id": "u_1",
        "workspace": "northstar", "id": "evt_01", "created_at": "2025-01-02T03:04:05Z",
        "payload": payload,
    })
}

fn render(fields: Value, payload: Value) -> Result<Value, FieldError> {
    FieldTemplates::compile(&fields).expect("fields compile").render(&context(payload))
}

#[test]
fn renders_the_onboarding_example() {
    let fields = json!({
        "email": "{{ payload.email }}",
        "properties": {"onboarding_step": "{{ payload.sequence_step }}", "label": "step {{ payload.sequence_step }} of 5"},
        "tag": "onboarding-step-{{ payload.sequence_step + 1 }}",
        "n": 7,
    });
    let rendered = render(fields, json!({"email": "alex@northstar.io", "sequence_step": 3})).unwrap();
    assert_eq!(
        rendered,
        json!({
            "email": "alex@northstar.io",
            "properties": {"onboarding_step": 3, "label": "step 3 of 5"},
            "tag": "onboarding-step-4",
            "n": 7,
        })
    );
}

#[test]
fn lone_expression_keeps_the_json_type_of_its_value() {
    let payload = json!({"n": 2.5, "ok": false, "obj": {"a": [1, "b"]}, "list": [1, 2], "none": null});
    let fields = json!([
        "{{ payload.n }}",
        "{{ payload.ok }}",
        "{{ payload.obj }}",
        "{{ payload.list }}",
        "{{ payload.none }}",
        "{{ payload.list | length }}",
        "{{ {'k': payload.n > 2} }}"
    ]);
    let rendered = render(fields, payload).unwrap();
    assert_eq!(rendered, json!([2.5, false, {"a": [1, "b"]}, [1, 2], null, 2, {"k": true}]));
}

#[test]
fn lone_expression_allows_surrounding_whitespace_and_whitespace_control() {
    let fields = json!({"a": "  {{ payload.n }}\n", "b": "{{- payload.n -}}", "c": "{{ {'k': {'v': payload.n}} }}",
        "d": "{{ '}}' + \"\\\"}}\" }}"});
    let rendered = render(fields, json!({"n": 4})).unwrap();
    assert_eq!(rendered, json!({"a": 4, "b": 4, "c": {"k": {"v": 4}}, "d": "}}\"}}"}));
}

#[test]
fn any_other_string_renders_to_a_string() {
    let fields = json!({"two": "{{ payload.n }}{{ payload.n }}", "pair": "{{ payload.n }} and {{ payload.n }}",
        "plain": "hello", "block": "{% if payload.n > 1 %}big{% endif %}", "nested": "{{ [payload.n] }}}}",
        "ends": "{{ payload.n }} {{ payload.n }}}}"});
    let rendered = render(fields, json!({"n": 4})).unwrap();
    let expected = json!({"two": "44", "pair": "4 and 4", "plain": "hello", "block": "big", "nested": "[4]}}",
        "ends": "4 4}}"});
    assert_eq!(rendered, expected);
}

#[test]
fn non_string_values_pass_through_unchanged() {
    let fields = json!({"n": 1.5, "b": true, "z": null, "list": [1, {"x": false}]});
    assert_eq!(render(fields.clone(), json!({})).unwrap(), fields);
}

#[test]
fn whole_context_is_available() {
    let fields = json!("{{ event }}|{{ resource }}/{{ resource_id }}|{{ workspace }}|{{ id }}|{{ created_at }}");
    let rendered = render(fields, json!({})).unwrap();
    assert_eq!(rendered, json!("user.signed_up|user/u_1|northstar|evt_01|2025-01-02T03:04:05Z"));
}

#[test]
fn output_is_not_html_escaped() {
    let rendered = render(json!("x {{ payload.s }}"), json!({"s": "<b>Tom & \"Jerry\"</b>"})).unwrap();
    assert_eq!(rendered, json!("x <b>Tom & \"Jerry\"</b>"));
}

#[test]
fn undefined_variables_fail_naming_the_field() {
    let fields = json!({"properties": {"ok": "{{ payload.n }}", "x": "{{ payload.nope }}"}});
    let err = render(fields, json!({"n": 1})).unwrap_err();
    assert_eq!(err.path, "properties.x");
    assert!(err.message.contains("undefined"), "{err}");

    let err = render(json!({"blocks": [{"text": "hi {{ nobody }}"}]}), json!({})).unwrap_err();
    assert_eq!(err.path, "blocks[0].text");
    assert!(err.message.contains("undefined"), "{err}");

    let err = render(json!({"deep": "{{ payload.nope.deeper }}"}), json!({})).unwrap_err();
    assert_eq!(err.path, "deep");

    let err = render(json!({"list": ["{{ [1, {'k': payload.nope}] }}"]}), json!({})).unwrap_err();
    assert_eq!((err.path.as_str(), err.message.as_str()), ("list[0]", "undefined value"));
    assert_eq!(render(json!("{{ payload.nope | default(3) }}"), json!({})).unwrap(), json!(3));
}

#[test]
fn unknown_filters_fail() {
    let err = FieldTemplates::compile(&json!({"e": "{{ payload.email | shout }}"}))
        .and_then(|t| t.render(&context(json!({"email": "a@b.c"}))))
        .unwrap_err();
    assert_eq!(err.path, "e");
    assert!(err.message.contains("shout"), "{err}");
}

#[test]
fn syntax_errors_are_reported_at_compile_with_the_path() {
    let err = FieldTemplates::compile(&json!({"properties": {"onboarding_step": "{{ payload.step "}})).unwrap_err();
    assert_eq!(err.path, "properties.onboarding_step");
    assert!(err.message.starts_with("syntax error"), "{err}");

    let err = FieldTemplates::compile(&json!({"blocks": [{"text": "ok"}, {"text": "{% if %}"}]})).unwrap_err();
    assert_eq!(err.path, "blocks[1].text");
    assert_eq!(err.to_string(), format!("field `blocks[1].text`: {}", err.message));

    let err = FieldTemplates::compile(&json!(["{{ a b }}"])).unwrap_err();
    assert_eq!(err.path, "[0]");
}

#[test]
fn runaway_templates_run_out_of_fuel() {
    let burn = "{% for i in range(1000) %}{% for j in range(1000) %}{{ j }}{% endfor %}{% endfor %}";
    let err = render(json!({"loop": burn}), json!({})).unwrap_err();
    assert_eq!(err.path, "loop");
    assert!(err.message.contains("fuel"), "{err}");
}

// The event is a view, not a copy: it must behave exactly like the JSON it shows.

#[test]
fn event_data_behaves_like_plain_values() {
    let payload = json!({"list": [1, 2, 3], "obj": {"b": 2, "a": [true]}, "s": "x"});
    let fields = json!({
        "last": "{{ payload.list[-1] }}", "len": "{{ payload.list | length }}", "eq": "{{ payload.list == [1, 2, 3] }}",
        "in": "{{ 2 in payload.list }}", "json": "{{ payload.obj | tojson }}", "sum": "{{ payload.list | sum }}",
        "items": "{% for k, v in payload.obj | dictsort %}{{ k }}={{ v }};{% endfor %}", "text": "{{ payload.obj.a }}",
        "whole": "{{ payload }}",
        "native": "{% for k, v in {'b': 2, 'a': [true]} | dictsort %}{{ k }}={{ v }};{% endfor %}",
    });
    let rendered = render(fields, payload.clone()).unwrap();
    assert_eq!(rendered["items"], rendered["native"], "a view renders as the value it shows");
    assert_eq!(
        rendered,
        json!({"last": 3, "len": 3, "eq": true, "in": true, "json": "{\"a\":[true],\"b\":2}", "sum": 6,
            "items": "a=[True];b=2;", "native": "a=[True];b=2;", "text": [true], "whole": payload})
    );
}

// Bounds. Probes first: each once aborted the process.

fn refused(fields: Value) -> FieldError {
    let err = FieldTemplates::compile(&fields).expect_err("template must be refused");
    assert_eq!(err.kind, FieldErrorKind::Refused, "{err}");
    err
}

#[test]
fn probe_sequence_repetition_is_refused() {
    let err = refused(json!({"body": "{{ [1] * 1000000000000000 }}"}));
    assert_eq!(err.path, "body");
    assert!(err.message.contains("`*`"), "{err}");
}

#[test]
fn probe_string_doubling_is_refused() {
    refused(json!({"body": "{% set s = 'x' %}{% set s = s + s %}{{ s }}"}));
    refused(json!({"body": "{{ ((('x' ~ 'x') ~ ('x' ~ 'x')) ~ 'y') }}"}));
    refused(json!({"body": "{{ 'x' * 100000000 }}"}));
}

#[test]
fn only_if_and_for_statements_are_allowed() {
    for statement in [
        "{% with a = 1 %}{% endwith %}",
        "{% filter upper %}x{% endfilter %}",
        "{% raw %}{% endraw %}",
        "{% macro m() %}{% endmacro %}",
        "{%- set a = 1 -%}",
        "{% do x %}",
    ] {
        refused(json!({"t": statement}));
    }
    let ok = json!({"t": "{% if payload.n > 1 %}{% for x in payload.l %}{{ x }}{% else %}-{% endfor %}{% elif true %}{% endif %}"});
    assert_eq!(render(ok, json!({"n": 2, "l": [1, 2]})).unwrap(), json!({"t": "12"}));
}

#[test]
fn the_policy_reads_code_not_text_strings_or_comments() {
    let fields = json!({"slack": "*{{ payload.title }}* ~ done", "lit": "{{ '*~' + \"{% set %}\" }}", "pow": "{{ 2 ** 3 }}",
        "comment": "{# a * b ~ c #}ok", "dict": "{{ {'a': {'b': 1}}.a.b }}"});
    let rendered = render(fields, json!({"title": "Intro"})).unwrap();
    assert_eq!(
        rendered,
        json!({"slack": "*Intro* ~ done", "lit": "*~{% set %}", "pow": 8, "comment": "ok", "dict": 1})
    );
    refused(json!({"after_dict": "{{ {'a': 1}.a }}{{ 2 * 3 }}"}));
}

#[test]
fn plus_is_limited_per_template() {
    let sum = |n: usize| format!("{{{{ 0{} }}}}", " + 1".repeat(n));
    assert_eq!(render(json!(sum(MAX_PLUS)), json!({})).unwrap(), json!(MAX_PLUS));
    refused(json!(sum(MAX_PLUS + 1)));
}

#[test]
fn fields_are_at_most_64_kib() {
    let err = refused(json!({"big": "x".repeat(MAX_FIELDS_BYTES)}));
    assert_eq!(err.path, "");
}

fn limit(fields: Value, payload: Value) -> FieldError {
    let started = std::time::Instant::now();
    let err = render(fields, payload).expect_err("render must breach a limit");
    assert_eq!(err.kind, FieldErrorKind::Limit, "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(1), "took {:?}", started.elapsed());
    err
}

#[test]
fn output_over_1_mib_per_delivery_is_a_limit_error() {
    let kb = json!({"s": "x".repeat(1000)});
    let err = limit(json!({"t": "{% for i in range(2000) %}{{ payload.s }}{% endfor %}"}), kb.clone());
    assert!(err.message.contains("output is larger than 1048576 bytes"), "{err}");
    // The bound is per delivery: two fields of 600 KB each do not fit together.
    let half = "{% for i in range(600) %}{{ payload.s }}{% endfor %}";
    assert_eq!(limit(json!({"a": half, "b": half}), kb).path, "b");
}

#[test]
fn a_lone_value_counts_against_the_output_bound() {
    let list = vec!["x".repeat(1000); 2000];
    let err = limit(json!({"v": "{{ payload.list }}"}), json!({"list": list}));
    assert!(err.message.contains("larger than 1048576"), "{err}");
}

#[test]
fn filters_cannot_grow_a_value_past_the_bound() {
    let s = json!({"s": "\\".repeat(2000), "l": (0..2000).collect::<Vec<_>>()});
    limit(json!("{{ payload.s | replace('', payload.s) }}"), s.clone());
    limit(json!("{{ payload.l | join(payload.s) }}"), s.clone());
    // Each `tojson` doubles the backslashes: twelve rounds would be 8 MB.
    let chain = format!("{{{{ payload.s{} }}}}", " | tojson".repeat(12));
    let err = limit(json!(chain), s);
    assert!(err.message.contains("value is larger than 1048576 bytes"), "{err}");
    // `map` applies a filter per item: the items' results share one allowance.
    let lists = json!({"sep": "-".repeat(4000), "ll": vec![[1, 2, 3]; 300]});
    limit(json!("{{ payload.ll | map('join', payload.sep) | list }}"), lists);
}

#[test]
fn filters_that_grow_by_a_chosen_factor_do_not_exist() {
    for template in [
        "{{ 'x' | indent(100000000) }}",
        "{{ [1] | batch(100000000, 0) }}",
        "{{ [1] | slice(3, 0) }}",
        "{{ '%s' | format(1) }}",
        "{{ payload | pprint }}",
        "{{ payload | tojson(indent=100000000) }}",
    ] {
        let err = FieldTemplates::compile(&json!(template)).and_then(|t| t.render(&context(json!({})))).unwrap_err();
        assert!(err.message.contains("filter") || err.message.contains("argument"), "{template}: {err}");
    }
}

#[test]
fn render_time_is_bounded_even_for_work_inside_one_instruction() {
    // 6,000 loop iterations within fuel, each comparing two 50,000-item lists.
    let list: Vec<Value> = (0..50_000).map(Value::from).collect();
    let mut other = list.clone();
    other[49_999] = json!(-1);
    let burn = "{% for x in payload.a %}{% if payload.a == payload.b %}{% endif %}{% endfor %}";
    let err = limit(json!({"burn": burn}), json!({"a": list, "b": other}));
    assert_eq!(err.message, "rendering took longer than 250 ms");
}

#[test]
fn the_dry_run_at_save_fails_only_on_a_breached_bound() {
    let sample = context(json!({}));
    let dry = |fields: Value| FieldTemplates::compile(&fields).unwrap().dry_run(&sample);
    assert_eq!(
        dry(json!({"tag": "onboarding-step-{{ payload.sequence_step + 1 }}", "e": "{{ payload.email }}"})),
        Ok(())
    );
    let err = dry(json!({"ok": "{{ payload.x.y }}", "burn": "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}"}))
        .unwrap_err();
    assert_eq!((err.path.as_str(), err.kind), ("burn", FieldErrorKind::Limit));
    let err =
        dry(json!({"big": "{% for i in range(11000) %}{{ '0123456789' + '0123456789' + '0123456789' }}{% endfor %}"}))
            .unwrap_err();
    assert_eq!(err.kind, FieldErrorKind::Limit, "{err}");
}

#[test]
fn ordinary_templates_are_well_inside_the_bounds() {
    let fields = json!({"email": "{{ payload.email }}", "tag": "onboarding-step-{{ payload.sequence_step + 1 }}",
        "names": "{{ payload.items | map(attribute='name') | join(', ') }}", "total": "{{ payload.items | map(attribute='n') | sum }}",
        "upper": "{{ (payload.first + ' ' + payload.last) | upper }}"});
    let payload = json!({"email": "a@b.c", "sequence_step": 3, "first": "Alex", "last": "Kim",
        "items": [{"name": "a", "n": 1}, {"name": "b", "n": 2}]});
    let rendered = render(fields, payload).unwrap();
    assert_eq!(
        rendered,
        json!({"email": "a@b.c", "tag": "onboarding-step-4", "names": "a, b", "total": 3, "upper": "ALEX KIM"})
    );
}
