//! HogFunctionSerializer (posthog-api.md §3.2): the writable fields type-checked, inputs checked
//! against the template's inputs_schema, filters and masking validated, secrets kept write-only.

use serde_json::{json, Map, Value};

use super::api::timestamp;
use super::errors::ApiError;
use super::state::State as Db;
use super::HogFunction;

pub(crate) const USER_UUID: &str = "0192a0c1-5a7d-7000-8000-5a7d1e000001";

const MAX_HOG_BYTES: usize = 100 * 1024;

const FUNCTION_TYPES: &[&str] = &[
    "destination",
    "site_destination",
    "internal_destination",
    "source_webhook",
    "warehouse_source_webhook",
    "site_app",
    "transformation",
];

// HogFunctionState: 1 healthy, 2 degraded, 3 disabled; 11/12 are the forced variants.
const STATE_HEALTHY: i64 = 1;
const STATE_DEGRADED: i64 = 2;
const STATE_DISABLED: i64 = 3;

struct Template {
    id: &'static str,
    name: &'static str,
    description: &'static str,
    icon_url: &'static str,
    hog: &'static str,
}

const WEBHOOK: Template = Template {
    id: "template-webhook",
    name: "HTTP Webhook",
    description: "Sends a webhook templated by the incoming event data",
    icon_url: "/static/services/webhook.svg",
    // Not PostHog's program: clients only ever see it echoed back, never run it.
    hog: "// stand-in for template-webhook: signs and POSTs inputs.body to inputs.url\n\
          fetch(inputs.url, {'method': inputs.method, 'headers': inputs.headers, 'body': inputs.body})",
};

fn template(id: &str) -> Option<&'static Template> {
    (id == WEBHOOK.id).then_some(&WEBHOOK)
}

/// The webhook template's inputs_schema as posthog-api.md §3.3 lists it.
pub fn webhook_inputs_schema() -> Vec<Value> {
    let choices: Vec<Value> = ["POST", "PUT", "PATCH", "GET", "DELETE"]
        .iter()
        .map(|m| json!({"label": m, "value": m}))
        .collect();
    vec![
        json!({"key": "url", "type": "string", "label": "Webhook URL", "secret": false, "required": true}),
        json!({"key": "method", "type": "choice", "label": "Method", "secret": false, "required": false,
               "choices": choices, "default": "POST"}),
        json!({"key": "body", "type": "json", "label": "JSON Body", "secret": false, "required": false,
               "default": {"event": "{event}", "person": "{person}"}}),
        json!({"key": "headers", "type": "dictionary", "label": "Headers", "secret": false, "required": false,
               "default": {"Content-Type": "application/json", "Accept": "application/json"}}),
        json!({"key": "signing_secret", "type": "string", "label": "Signing secret", "secret": true, "required": false}),
        json!({"key": "debug", "type": "boolean", "label": "Log responses", "secret": false, "required": false,
               "default": false}),
    ]
}

fn created_by() -> Value {
    json!({
        "id": 1,
        "uuid": USER_UUID,
        "distinct_id": "standin-user",
        "first_name": "Stand",
        "last_name": "In",
        "email": "standin@posthog.invalid",
        "is_email_verified": true,
    })
}

pub(crate) fn represent(function: &HogFunction, full: bool) -> Value {
    let template = function.template_id.as_deref().and_then(template).map(|t| {
        json!({"id": t.id, "name": t.name, "description": t.description, "type": "destination",
               "status": "stable", "free": false, "icon_url": t.icon_url})
    });
    let mut body = json!({
        "id": function.id,
        "type": function.kind,
        "name": function.name,
        "description": function.description,
        "created_at": timestamp(function.created_at),
        "created_by": created_by(),
        "updated_at": timestamp(function.updated_at),
        "enabled": function.enabled,
        "hog": function.hog,
        "filters": function.filters,
        "icon_url": function.icon_url,
        "template": template,
        "status": {"state": function.state, "tokens": 0},
        "execution_order": null,
    });
    if full {
        let inputs: Map<String, Value> = function
            .inputs
            .iter()
            .map(|(key, item)| {
                // Secret inputs are write-only: PostHog shows that one is set, never its value.
                let shown = if is_secret(&function.inputs_schema, key) {
                    json!({"secret": true})
                } else {
                    item.clone()
                };
                (key.clone(), shown)
            })
            .collect();
        body["inputs_schema"] = json!(function.inputs_schema);
        body["inputs"] = Value::Object(inputs);
        body["masking"] = function.masking.clone();
        body["mappings"] = Value::Null;
        body["bytecode"] = json!(["_H", 1]);
        body["transpiled"] = Value::Null;
    }
    body
}

fn is_secret(schema: &[Value], key: &str) -> bool {
    schema
        .iter()
        .any(|f| f["key"] == key && f["secret"] == true)
}

fn drf_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

fn required(attr: &str) -> ApiError {
    ApiError::validation("required", "This field is required.", Some(attr))
}

fn not_a_dict(value: &Value, attr: Option<&str>) -> ApiError {
    ApiError::validation(
        "invalid",
        &format!(
            "Invalid data. Expected a dictionary, but got {}.",
            drf_type(value)
        ),
        attr,
    )
}

/// The writable fields of HogFunctionSerializer, type-checked; unknown and read-only keys are
/// ignored as DRF ignores them.
#[derive(Default)]
pub(crate) struct Fields {
    kind: Option<String>,
    name: Option<String>,
    description: Option<String>,
    template_id: Option<String>,
    hog: Option<String>,
    inputs_schema: Option<Vec<Value>>,
    inputs: Option<Map<String, Value>>,
    filters: Option<Value>,
    masking: Option<Value>,
    enabled: Option<bool>,
    deleted: Option<bool>,
    icon_url: Option<String>,
}

impl Fields {
    pub(crate) fn parse(body: &Value) -> Result<Self, ApiError> {
        let Value::Object(map) = body else {
            return Err(not_a_dict(body, None));
        };
        let string = |key: &str| -> Result<Option<String>, ApiError> {
            match map.get(key) {
                None => Ok(None),
                Some(Value::Null) if key == "type" => Err(ApiError::validation(
                    "null",
                    "This field may not be null.",
                    Some(key),
                )),
                Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(ApiError::validation(
                    "invalid",
                    "Not a valid string.",
                    Some(key),
                )),
            }
        };
        let boolean = |key: &str| -> Result<Option<bool>, ApiError> {
            let Some(value) = map.get(key) else {
                return Ok(None);
            };
            // DRF's BooleanField accepts these spellings, so a strict stand-in would be wrong here.
            match value {
                Value::Bool(b) => Ok(Some(*b)),
                Value::Number(n) if n.as_i64() == Some(1) => Ok(Some(true)),
                Value::Number(n) if n.as_i64() == Some(0) => Ok(Some(false)),
                Value::String(s)
                    if matches!(s.as_str(), "true" | "True" | "TRUE" | "1" | "yes" | "on") =>
                {
                    Ok(Some(true))
                }
                Value::String(s)
                    if matches!(s.as_str(), "false" | "False" | "FALSE" | "0" | "no" | "off") =>
                {
                    Ok(Some(false))
                }
                _ => Err(ApiError::validation(
                    "invalid",
                    "Must be a valid boolean.",
                    Some(key),
                )),
            }
        };
        let inputs = match map.get("inputs") {
            None => None,
            Some(Value::Object(inputs)) => Some(inputs.clone()),
            Some(other) => {
                return Err(ApiError::validation(
                    "not_a_dict",
                    &format!(
                        "Expected a dictionary of items but got type \"{}\".",
                        drf_type(other)
                    ),
                    Some("inputs"),
                ))
            }
        };
        let inputs_schema = match map.get("inputs_schema") {
            None => None,
            Some(Value::Array(items)) => Some(items.clone()),
            Some(other) => {
                return Err(ApiError::validation(
                    "not_a_list",
                    &format!(
                        "Expected a list of items but got type \"{}\".",
                        drf_type(other)
                    ),
                    Some("inputs_schema"),
                ))
            }
        };
        Ok(Fields {
            kind: string("type")?,
            name: string("name")?,
            description: string("description")?,
            template_id: string("template_id")?,
            hog: string("hog")?,
            inputs_schema,
            inputs,
            filters: map.get("filters").cloned(),
            masking: map.get("masking").cloned(),
            enabled: boolean("enabled")?,
            deleted: boolean("deleted")?,
            icon_url: string("icon_url")?,
        })
    }
}

fn check_kind(kind: &str) -> Result<(), ApiError> {
    if !FUNCTION_TYPES.contains(&kind) {
        return Err(ApiError::validation(
            "invalid_choice",
            &format!("\"{kind}\" is not a valid choice."),
            Some("type"),
        ));
    }
    if kind != "destination" && kind != "internal_destination" {
        return Err(ApiError::validation(
            "invalid",
            "The PostHog stand-in models only destination and internal_destination functions.",
            Some("type"),
        ));
    }
    Ok(())
}

fn check_hog(hog: &str) -> Result<(), ApiError> {
    if hog.len() > MAX_HOG_BYTES {
        return Err(ApiError::validation(
            "invalid",
            &format!(
                "Hog code exceeds maximum size of {} KB.",
                MAX_HOG_BYTES / 1024
            ),
            Some("hog"),
        ));
    }
    Ok(())
}

fn find_template(id: &str) -> Result<&'static Template, ApiError> {
    template(id).ok_or_else(|| {
        ApiError::validation(
            "invalid",
            &format!("No template found for id '{id}'"),
            Some("template_id"),
        )
    })
}

fn check_schema(schema: &[Value]) -> Result<(), ApiError> {
    for field in schema {
        if !field.is_object() || !field["key"].is_string() || !field["type"].is_string() {
            return Err(ApiError::validation(
                "invalid",
                "Each inputs_schema item needs a string key and type.",
                Some("inputs_schema"),
            ));
        }
    }
    Ok(())
}

/// posthog/cdp/validation.py: each input is an object `{"value": …, "templating"?}`; only keys of
/// the schema are kept; required inputs must be non-empty; values must fit their schema type.
fn validate_inputs(
    schema: &[Value],
    inputs: &Map<String, Value>,
    previous: Option<&Map<String, Value>>,
) -> Result<Map<String, Value>, ApiError> {
    for (key, item) in inputs {
        if !item.is_object() {
            return Err(not_a_dict(item, Some(&format!("inputs__{key}"))));
        }
    }
    let mut validated = Map::new();
    for (order, field) in schema.iter().enumerate() {
        let key = field["key"].as_str().unwrap_or_default();
        let attr = format!("inputs__{key}");
        let mut item = inputs.get(key).cloned();
        // Echoing back `{"secret": true}` (what a GET shows) keeps the stored secret.
        let keeps_secret = item.as_ref().is_some_and(|i| {
            i.get("secret") == Some(&Value::Bool(true)) && i.get("value").is_none()
        });
        if field["secret"] == true && keeps_secret {
            item = previous.and_then(|p| p.get(key)).cloned();
        }
        let value = item
            .as_ref()
            .and_then(|i| i.get("value"))
            .filter(|v| !v.is_null() && v.as_str() != Some(""));
        let Some(value) = value else {
            if field["required"] == true {
                return Err(required(&attr));
            }
            continue;
        };
        check_input_type(field, value, &attr)?;
        let mut stored = Map::new();
        stored.insert("value".to_owned(), value.clone());
        if let Some(templating) = item.as_ref().and_then(|i| i.get("templating")) {
            if !matches!(templating.as_str(), Some("hog" | "liquid")) {
                return Err(ApiError::validation(
                    "invalid_choice",
                    &format!("\"{}\" is not a valid choice.", templating),
                    Some(&format!("{attr}__templating")),
                ));
            }
            stored.insert("templating".to_owned(), templating.clone());
        }
        stored.insert("order".to_owned(), json!(order));
        validated.insert(key.to_owned(), Value::Object(stored));
    }
    Ok(validated)
}

fn check_input_type(field: &Value, value: &Value, attr: &str) -> Result<(), ApiError> {
    let problem = match field["type"].as_str().unwrap_or("string") {
        "string" if !value.is_string() => Some("Value must be a string.".to_owned()),
        "boolean" if !value.is_boolean() => Some("Value must be a boolean.".to_owned()),
        "dictionary" if !value.is_object() => Some("Value must be a dictionary.".to_owned()),
        "number" if !value.is_number() => Some("Value must be a number.".to_owned()),
        "choice" => {
            let allowed: Vec<&Value> = field["choices"]
                .as_array()
                .map(|c| c.iter().map(|c| &c["value"]).collect())
                .unwrap_or_default();
            (!allowed.contains(&value)).then(|| {
                let shown: Vec<String> = allowed.iter().map(|v| v.to_string()).collect();
                format!("Value must be one of [{}].", shown.join(", "))
            })
        }
        _ => None,
    };
    match problem {
        Some(detail) => Err(ApiError::validation("invalid", &detail, Some(attr))),
        None => Ok(()),
    }
}

fn validate_filters(filters: &Value) -> Result<Value, ApiError> {
    let Value::Object(map) = filters else {
        return Err(not_a_dict(filters, Some("filters")));
    };
    if let Some(source) = map.get("source") {
        if !matches!(source.as_str(), Some("events" | "person-updates")) {
            return Err(ApiError::validation(
                "invalid_choice",
                &format!("{source} is not a valid choice."),
                Some("filters__source"),
            ));
        }
    }
    for key in ["events", "actions", "properties"] {
        if let Some(value) = map.get(key) {
            if !value.is_array() {
                return Err(ApiError::validation(
                    "not_a_list",
                    &format!(
                        "Expected a list of items but got type \"{}\".",
                        drf_type(value)
                    ),
                    Some(&format!("filters__{key}")),
                ));
            }
        }
    }
    for event in map
        .get("events")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let attr = Some("filters__events");
        if !event.is_object() {
            return Err(not_a_dict(event, attr));
        }
        if !event["id"].is_string() && !event["id"].is_null() {
            return Err(ApiError::validation(
                "invalid",
                "Event filter id must be a string.",
                attr,
            ));
        }
        if event.get("type").is_some_and(|t| t != "events") {
            return Err(ApiError::validation(
                "invalid",
                "Event filters must have type \"events\".",
                attr,
            ));
        }
    }
    if map
        .get("filter_test_accounts")
        .is_some_and(|v| !v.is_boolean())
    {
        return Err(ApiError::validation(
            "invalid",
            "Must be a valid boolean.",
            Some("filters__filter_test_accounts"),
        ));
    }
    let mut compiled = map.clone();
    // PostHog compiles filters to Hog bytecode; this marker only shows that it did.
    compiled.insert("bytecode".to_owned(), json!(["_H", 1]));
    Ok(Value::Object(compiled))
}

fn validate_masking(masking: &Value) -> Result<Value, ApiError> {
    let map = match masking {
        Value::Null => return Ok(Value::Null),
        Value::Object(map) => map,
        other => return Err(not_a_dict(other, Some("masking"))),
    };
    match map.get("ttl").and_then(Value::as_i64) {
        None => return Err(required("masking__ttl")),
        Some(ttl) if ttl < 60 => {
            return Err(ApiError::validation(
                "min_value",
                "Ensure this value is greater than or equal to 60.",
                Some("masking__ttl"),
            ))
        }
        Some(ttl) if ttl > 86_400 => {
            return Err(ApiError::validation(
                "max_value",
                "Ensure this value is less than or equal to 86400.",
                Some("masking__ttl"),
            ))
        }
        Some(_) => {}
    }
    if !map.get("hash").is_some_and(Value::is_string) {
        return Err(required("masking__hash"));
    }
    if map
        .get("threshold")
        .is_some_and(|t| !t.is_null() && !t.is_i64())
    {
        return Err(ApiError::validation(
            "invalid",
            "A valid integer is required.",
            Some("masking__threshold"),
        ));
    }
    Ok(masking.clone())
}

pub(crate) fn new_function(
    db: &mut Db,
    project: i64,
    client_id: &str,
    fields: Fields,
) -> Result<HogFunction, ApiError> {
    let kind = fields.kind.ok_or_else(|| required("type"))?;
    check_kind(&kind)?;
    let template = fields
        .template_id
        .as_deref()
        .map(find_template)
        .transpose()?;
    let hog = fields
        .hog
        .or_else(|| template.map(|t| t.hog.to_owned()))
        .ok_or_else(|| required("hog"))?;
    check_hog(&hog)?;
    let inputs_schema = fields
        .inputs_schema
        .or_else(|| template.map(|_| webhook_inputs_schema()))
        .unwrap_or_default();
    check_schema(&inputs_schema)?;
    let inputs = validate_inputs(&inputs_schema, &fields.inputs.unwrap_or_default(), None)?;
    let filters = validate_filters(&fields.filters.unwrap_or_else(|| json!({})))?;
    let masking = validate_masking(&fields.masking.unwrap_or(Value::Null))?;
    let now = db.now();
    Ok(HogFunction {
        id: db.ids.uuid(),
        project,
        kind,
        name: fields
            .name
            .or_else(|| template.map(|t| t.name.to_owned()))
            .unwrap_or_default(),
        description: fields
            .description
            .or_else(|| template.map(|t| t.description.to_owned()))
            .unwrap_or_default(),
        template_id: fields.template_id,
        hog,
        inputs_schema,
        inputs,
        filters,
        masking,
        // The model's default: a function created without `enabled` never runs.
        enabled: fields.enabled.unwrap_or(false),
        deleted: fields.deleted.unwrap_or(false),
        state: STATE_HEALTHY,
        icon_url: fields
            .icon_url
            .or_else(|| template.map(|t| t.icon_url.to_owned())),
        client_id: client_id.to_owned(),
        created_at: now,
        updated_at: now,
    })
}

/// PATCH (partial) and PUT: validated on a copy, so a rejected update changes nothing.
pub(crate) fn updated_function(
    db: &Db,
    existing: &HogFunction,
    fields: Fields,
    partial: bool,
) -> Result<HogFunction, ApiError> {
    let mut function = existing.clone();
    match &fields.kind {
        None if !partial => return Err(required("type")),
        None => {}
        Some(kind) => {
            check_kind(kind)?;
            if *kind != existing.kind {
                return Err(ApiError::validation(
                    "invalid",
                    "Cannot modify the type of an existing function",
                    Some("type"),
                ));
            }
        }
    }
    if let Some(id) = &fields.template_id {
        find_template(id)?;
        function.template_id = Some(id.clone());
    }
    if let Some(hog) = fields.hog {
        check_hog(&hog)?;
        function.hog = hog;
    }
    if let Some(schema) = fields.inputs_schema {
        check_schema(&schema)?;
        function.inputs_schema = schema;
    }
    match fields.inputs {
        Some(inputs) => {
            function.inputs =
                validate_inputs(&function.inputs_schema, &inputs, Some(&existing.inputs))?
        }
        None if !partial => {
            function.inputs = validate_inputs(&function.inputs_schema, &Map::new(), None)?
        }
        None => {}
    }
    if let Some(filters) = fields.filters {
        function.filters = validate_filters(&filters)?;
    }
    if let Some(masking) = fields.masking {
        function.masking = validate_masking(&masking)?;
    }
    if let Some(name) = fields.name {
        function.name = name;
    }
    if let Some(description) = fields.description {
        function.description = description;
    }
    if let Some(icon_url) = fields.icon_url {
        function.icon_url = Some(icon_url);
    }
    if let Some(enabled) = fields.enabled {
        function.enabled = enabled;
    }
    if let Some(deleted) = fields.deleted {
        function.deleted = deleted;
    }
    function.updated_at = db.now();
    // HogFunctionSerializer.update: re-enabling a disabled function brings it back degraded.
    if function.enabled && function.state >= STATE_DISABLED {
        function.state = STATE_DEGRADED;
    }
    Ok(function)
}
