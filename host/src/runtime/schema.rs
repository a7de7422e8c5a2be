//! The structural check of the JSON Schemas a manifest declares (settings,
//! each action's fields). It does not validate documents against them: it
//! makes sure the keywords the host and the API rely on have the right
//! shapes, so a malformed schema is refused at load time with the path of
//! the fault instead of surfacing later as a confusing validation result.

use serde_json::Value;

const TYPES: [&str; 7] = ["object", "array", "string", "number", "integer", "boolean", "null"];

/// Check `schema`, naming faults by their path below `path`.
pub fn check_schema(schema: &Value, path: &str) -> Result<(), String> {
    let obj = match schema {
        Value::Bool(_) => return Ok(()),
        Value::Object(o) => o,
        _ => return Err(format!("{path} must be a JSON Schema (an object or a boolean)")),
    };
    let type_ok = |t: &Value| t.as_str().is_some_and(|t| TYPES.contains(&t));
    match obj.get("type") {
        None => {}
        Some(Value::Array(ts)) if !ts.is_empty() && ts.iter().all(type_ok) => {}
        Some(t) if type_ok(t) => {}
        Some(t) => return Err(format!("{path}.type: {t} is not a JSON Schema type")),
    }
    if let Some(props) = obj.get("properties") {
        let props = props.as_object().ok_or_else(|| format!("{path}.properties must be an object"))?;
        for (name, sub) in props {
            check_schema(sub, &format!("{path}.properties.{name}"))?;
        }
    }
    if let Some(required) = obj.get("required")
        && !required.as_array().is_some_and(|r| r.iter().all(Value::is_string))
    {
        return Err(format!("{path}.required must be an array of property names"));
    }
    for key in ["items", "additionalProperties", "not"] {
        if let Some(sub) = obj.get(key) {
            check_schema(sub, &format!("{path}.{key}"))?;
        }
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(subs) = obj.get(key) {
            let subs = subs.as_array().ok_or_else(|| format!("{path}.{key} must be an array of schemas"))?;
            for (i, sub) in subs.iter().enumerate() {
                check_schema(sub, &format!("{path}.{key}[{i}]"))?;
            }
        }
    }
    if obj.get("enum").is_some_and(|e| !e.is_array()) {
        return Err(format!("{path}.enum must be an array"));
    }
    for key in ["pattern", "format", "description", "title"] {
        if obj.get(key).is_some_and(|v| !v.is_string()) {
            return Err(format!("{path}.{key} must be a string"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::check_schema;

    #[test]
    fn schemas_with_wrong_shapes_are_named_by_path() {
        assert_eq!(check_schema(&json!({"type": "object", "properties": {"url": {"type": "string"}}}), "s"), Ok(()));
        assert_eq!(check_schema(&json!(true), "s"), Ok(()));
        let err = |v| check_schema(&v, "settings-schema").unwrap_err();
        assert!(
            err(json!({"properties": {"url": {"type": "url"}}})).starts_with("settings-schema.properties.url.type")
        );
        assert!(err(json!({"required": "url"})).contains("settings-schema.required"));
        assert!(err(json!({"anyOf": [{"type": 3}]})).contains("settings-schema.anyOf[0].type"));
        assert!(err(json!([1])).contains("must be a JSON Schema"));
    }
}
