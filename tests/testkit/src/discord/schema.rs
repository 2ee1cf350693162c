//! Discord's own contract for request bodies: loads the official `OpenAPI` document
//! (`openapi.json`, `OpenAPI` 3.1, API v10) once per process, matches each request to its operation
//! and validates JSON bodies against that operation's `requestBody` schema, with `$ref`s resolved
//! against the whole document.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use jsonschema::{Draft, Registry, Validator};
use serde_json::{Map, Value, json};

/// The URI the `OpenAPI` document is registered under; every `#/components/...` reference in it
/// resolves against this document.
const DOC_URI: &str = "urn:docobo-testkit:discord-openapi";

/// Where each operation's request-body schema is copied inside the registered document, keyed by
/// `operationId`. Path keys (`/guilds/{guild_id}/…`) contain characters a URI fragment cannot
/// carry, so the schemas get a reference-friendly home instead.
const BODIES: &str = "x-docobo-request-bodies";

/// Environment variable that overrides where `openapi.json` is read from.
pub const OPENAPI_ENV: &str = "DOCOBO_DISCORD_OPENAPI";

/// `$DOCOBO_DISCORD_OPENAPI` if set, else the repository's copy
/// (`tests/fixtures/discord/openapi.json`).
#[must_use]
pub fn default_openapi_path() -> PathBuf {
    if let Some(path) = std::env::var_os(OPENAPI_ENV) {
        return PathBuf::from(path);
    }
    crate::fixtures::dir().join("discord/openapi.json")
}

/// A request that broke Discord's published contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaViolation {
    /// HTTP method, upper case.
    pub method: String,
    /// Path below `/api/v10`, without the query string.
    pub path: String,
    /// The matched operation, if any route of the spec matched.
    pub operation_id: Option<String>,
    /// One line per schema error: `<instance path>: <message>`.
    pub errors: Vec<String>,
    /// The body as received (JSON if it parsed, otherwise as lossy text).
    pub body: Option<Value>,
}

impl fmt::Display for SchemaViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} ({}): {}",
            self.method,
            self.path,
            self.operation_id.as_deref().unwrap_or("no operation"),
            self.errors.join("; ")
        )?;
        if let Some(body) = &self.body {
            write!(f, "\n    body: {body}")?;
        }
        Ok(())
    }
}

#[derive(Debug)]
enum Segment {
    Literal(String),
    Param,
}

#[derive(Debug)]
struct Operation {
    method: String,
    segments: Vec<Segment>,
    /// The `operationId`.
    id: String,
    /// Whether the operation accepts an `application/json` body at all.
    json_body: bool,
    body_required: bool,
}

/// The loaded spec: the registry holding the whole document plus an index of operations.
pub(crate) struct Spec {
    registry: Registry<'static>,
    operations: Vec<Operation>,
    /// Compiled validators, built on first use: compiling all of them up front would take far
    /// longer than the handful of operations a test touches.
    validators: Mutex<HashMap<String, Arc<Validator>>>,
}

impl fmt::Debug for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spec")
            .field("operations", &self.operations.len())
            .finish_non_exhaustive()
    }
}

/// Request-body schemas typed `integer` where Discord documents (and serenity sends) a
/// permission bit set serialized as a decimal string ("Permissions … serialized into a string",
/// developers/topics/permissions). Both forms are accepted by Discord; the spec lists only one.
const PERMISSION_FIELDS: [&str; 4] = ["default_member_permissions", "permissions", "allow", "deny"];

/// Loads the spec once per process; later calls share it (or the same error).
pub(crate) fn load_shared(path: &Path) -> Result<Arc<Spec>, String> {
    type Loaded = HashMap<PathBuf, Result<Arc<Spec>, String>>;
    static SPECS: OnceLock<Mutex<Loaded>> = OnceLock::new();
    let specs = SPECS.get_or_init(|| Mutex::new(HashMap::new()));
    let mut specs = specs.lock().unwrap_or_else(PoisonError::into_inner);
    specs
        .entry(path.to_path_buf())
        .or_insert_with(|| Spec::load(path).map(Arc::new))
        .clone()
}

impl Spec {
    fn load(path: &Path) -> Result<Spec, String> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "cannot read Discord's OpenAPI spec at {} ({e}); set {OPENAPI_ENV} to its path",
                path.display()
            )
        })?;
        let mut doc: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
        let (operations, bodies) = index_operations(&doc)?;
        widen_permission_fields(&mut doc);
        widen_attachment_ids(&mut doc);
        let components = doc
            .get_mut("components")
            .and_then(Value::as_object_mut)
            .ok_or("openapi.json has no components object")?;
        components.insert(BODIES.to_owned(), Value::Object(bodies));
        let registry = Registry::new()
            .draft(Draft::Draft202012)
            .add(DOC_URI, doc)
            .and_then(jsonschema::RegistryBuilder::prepare)
            .map_err(|e| format!("cannot index openapi.json: {e}"))?;
        Ok(Spec {
            registry,
            operations,
            validators: Mutex::new(HashMap::new()),
        })
    }

    /// Checks one request. Returns the matched operation id, or the violation.
    pub(crate) fn check(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<String, Box<SchemaViolation>> {
        let violation = |operation_id: Option<&str>, errors: Vec<String>| {
            Box::new(SchemaViolation {
                method: method.to_owned(),
                path: path.to_owned(),
                operation_id: operation_id.map(str::to_owned),
                errors,
                body: (!body.is_empty()).then(|| {
                    serde_json::from_slice(body).unwrap_or_else(|_| {
                        Value::String(String::from_utf8_lossy(body).into_owned())
                    })
                }),
            })
        };
        let Some(op) = self.find(method, path) else {
            return Err(violation(
                None,
                vec![format!(
                    "no operation in Discord's OpenAPI spec matches {method} {path}"
                )],
            ));
        };
        let id = op.id.as_str();
        if body.is_empty() {
            if op.body_required {
                return Err(violation(Some(id), vec!["request body is required".into()]));
            }
            return Ok(id.to_owned());
        }
        let media = content_type
            .and_then(|c| c.split(';').next())
            .map(str::trim)
            .unwrap_or_default();
        if media.eq_ignore_ascii_case("multipart/form-data") {
            // Attachments: only the `payload_json` part is JSON, and Docobo sends no files.
            return Ok(id.to_owned());
        }
        if !media.eq_ignore_ascii_case("application/json") {
            return Err(violation(
                Some(id),
                vec![format!("unexpected Content-Type {media:?} for a body")],
            ));
        }
        if !op.json_body {
            return Err(violation(
                Some(id),
                vec!["this operation takes no request body".into()],
            ));
        }
        let instance: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return Err(violation(Some(id), vec![format!("body is not JSON: {e}")])),
        };
        let validator = self
            .validator(id)
            .map_err(|e| violation(Some(id), vec![e]))?;
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| {
                let at = e.instance_path().to_string();
                let at = if at.is_empty() { "/".to_owned() } else { at };
                format!("{at}: {e}")
            })
            .collect();
        if errors.is_empty() {
            Ok(id.to_owned())
        } else {
            Err(violation(Some(id), errors))
        }
    }

    /// The operation whose path template matches, preferring literal segments (`/users/@me` over
    /// `/users/{user_id}`).
    fn find(&self, method: &str, path: &str) -> Option<&Operation> {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        self.operations
            .iter()
            .filter(|op| op.method == method && op.segments.len() == parts.len())
            .filter_map(|op| {
                let mut literal = 0usize;
                for (segment, part) in op.segments.iter().zip(&parts) {
                    match segment {
                        Segment::Literal(l) if l == part => literal += 1,
                        Segment::Param if !part.is_empty() => {}
                        _ => return None,
                    }
                }
                Some((literal, op))
            })
            .max_by_key(|(literal, _)| *literal)
            .map(|(_, op)| op)
    }

    fn validator(&self, operation_id: &str) -> Result<Arc<Validator>, String> {
        let mut cache = self
            .validators
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(v) = cache.get(operation_id) {
            return Ok(Arc::clone(v));
        }
        let schema = json!({ "$ref": format!("{DOC_URI}#/components/{BODIES}/{operation_id}") });
        let validator = jsonschema::options()
            .with_draft(Draft::Draft202012)
            .with_registry(&self.registry)
            .build(&schema)
            .map_err(|e| format!("cannot compile the schema of {operation_id}: {e}"))?;
        let validator = Arc::new(validator);
        cache.insert(operation_id.to_owned(), Arc::clone(&validator));
        Ok(validator)
    }
}

type Indexed = (Vec<Operation>, Map<String, Value>);

fn index_operations(doc: &Value) -> Result<Indexed, String> {
    let paths = doc
        .get("paths")
        .and_then(Value::as_object)
        .ok_or("openapi.json has no paths object")?;
    let mut operations = Vec::new();
    let mut bodies = Map::new();
    for (template, item) in paths {
        let Some(item) = item.as_object() else {
            continue;
        };
        for (method, op) in item {
            if !matches!(method.as_str(), "get" | "put" | "post" | "patch" | "delete") {
                continue;
            }
            let Some(operation_id) = op.get("operationId").and_then(Value::as_str) else {
                continue;
            };
            let request_body = op.get("requestBody");
            let schema = request_body
                .and_then(|b| b.pointer("/content/application~1json/schema"))
                .cloned();
            let body_required = request_body
                .and_then(|b| b.get("required"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let json_body = schema.is_some();
            if let Some(schema) = schema {
                bodies.insert(operation_id.to_owned(), schema);
            }
            operations.push(Operation {
                method: method.to_ascii_uppercase(),
                segments: template
                    .trim_matches('/')
                    .split('/')
                    .map(|s| {
                        if s.starts_with('{') && s.ends_with('}') {
                            Segment::Param
                        } else {
                            Segment::Literal(s.to_owned())
                        }
                    })
                    .collect(),
                id: operation_id.to_owned(),
                json_body,
                body_required,
            });
        }
    }
    Ok((operations, bodies))
}

/// An attachment in a request names its upload by index, `files[n]` ↔ `"id": n`. The spec
/// types that id as a snowflake string; Discord's own upload example
/// (developers/reference.mdx, "Uploading Files") and serenity send an integer. Both are
/// accepted.
fn widen_attachment_ids(doc: &mut Value) {
    if let Some(id) = doc.pointer_mut("/components/schemas/MessageAttachmentRequest/properties/id")
    {
        let original = id.take();
        *id = json!({ "anyOf": [original, { "type": "integer", "minimum": 0 }] });
    }
}

/// See [`PERMISSION_FIELDS`]: in request schemas, accept a decimal string as well as an integer.
fn widen_permission_fields(doc: &mut Value) {
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for (name, schema) in schemas.iter_mut() {
        if !name.contains("Request") && !name.ends_with("InstallParams") {
            continue;
        }
        let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
            continue;
        };
        for field in PERMISSION_FIELDS {
            let Some(prop) = props.get_mut(field) else {
                continue;
            };
            let integer = match prop.get("type") {
                Some(Value::String(t)) => t == "integer",
                Some(Value::Array(ts)) => ts.iter().any(|t| t == "integer"),
                _ => false,
            };
            if integer {
                let original = prop.take();
                *prop = json!({ "anyOf": [original, { "type": "string", "pattern": "^[0-9]+$" }] });
            }
        }
    }
}
