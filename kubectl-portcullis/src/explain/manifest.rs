//! Reading manifests: files, directories or stdin, each multi-document YAML or JSON (a single
//! object, an array of objects or a stream of them), `List` kinds flattened.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Why the input cannot be read (the only failure of `explain`: exit code 1).
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// A file or directory cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file (`-` for stdin).
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// Neither YAML nor JSON.
    #[error("{path}: {message}")]
    Syntax {
        /// The file (`-` for stdin).
        path: String,
        /// What the parser said.
        message: String,
    },
    /// A document that is not an object (a string, a number, …).
    #[error("{path}: document {index} is not a Kubernetes object")]
    NotAnObject {
        /// The file (`-` for stdin).
        path: String,
        /// 1-based document number.
        index: usize,
    },
}

/// The objects of all `inputs` in order: `-` is stdin, a directory contributes its `.yaml`,
/// `.yml` and `.json` files (sorted, not recursive).
pub fn read_inputs(inputs: &[PathBuf]) -> Result<Vec<Value>, ManifestError> {
    let mut objects = Vec::new();
    for input in inputs {
        if input.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|source| ManifestError::Io {
                    path: "-".into(),
                    source,
                })?;
            objects.extend(parse(&text, "-")?);
        } else if input.is_dir() {
            for file in manifest_files(input)? {
                objects.extend(read_file(&file)?);
            }
        } else {
            objects.extend(read_file(input)?);
        }
    }
    Ok(objects)
}

fn manifest_files(dir: &Path) -> Result<Vec<PathBuf>, ManifestError> {
    let io = |source| ManifestError::Io {
        path: dir.display().to_string(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let manifest = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"));
        if manifest && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn read_file(path: &Path) -> Result<Vec<Value>, ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text, &path.display().to_string())
}

/// The objects of one text: a JSON value or stream when it starts like JSON, else multi-document
/// YAML. Empty documents are skipped; arrays and `List` kinds are flattened.
pub fn parse(text: &str, path: &str) -> Result<Vec<Value>, ManifestError> {
    let syntax = |message: String| ManifestError::Syntax {
        path: path.to_owned(),
        message,
    };
    let trimmed = text.trim_start();
    let documents: Vec<Value> = if trimmed.starts_with('{') || trimmed.starts_with('[') {
        serde_json::Deserializer::from_str(text)
            .into_iter::<Value>()
            .collect::<Result<_, _>>()
            .map_err(|e| syntax(format!("invalid JSON: {e}")))?
    } else {
        let mut documents = Vec::new();
        for document in serde_yaml::Deserializer::from_str(text) {
            let value = <serde_yaml::Value as serde::Deserialize>::deserialize(document)
                .map_err(|e| syntax(format!("invalid YAML: {e}")))?;
            let value = serde_json::to_value(value)
                .map_err(|e| syntax(format!("YAML that has no JSON form: {e}")))?;
            documents.push(value);
        }
        documents
    };
    let mut objects = Vec::new();
    for (i, document) in documents.into_iter().enumerate() {
        flatten(document, path, i + 1, &mut objects)?;
    }
    Ok(objects)
}

fn flatten(
    value: Value,
    path: &str,
    index: usize,
    out: &mut Vec<Value>,
) -> Result<(), ManifestError> {
    match value {
        Value::Null => Ok(()),
        Value::Array(items) => items
            .into_iter()
            .try_for_each(|item| flatten(item, path, index, out)),
        Value::Object(mut map) => {
            let is_list = map
                .get("kind")
                .and_then(Value::as_str)
                .is_some_and(|k| k.ends_with("List"))
                && map.get("items").is_some_and(Value::is_array);
            if is_list {
                let items = map.remove("items").unwrap_or_default();
                flatten(items, path, index, out)
            } else {
                out.push(Value::Object(map));
                Ok(())
            }
        }
        _ => Err(ManifestError::NotAnObject {
            path: path.to_owned(),
            index,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(objects: &[Value]) -> Vec<String> {
        objects
            .iter()
            .map(|o| {
                format!(
                    "{}/{}",
                    o["kind"].as_str().unwrap_or("?"),
                    o["metadata"]["name"].as_str().unwrap_or("?")
                )
            })
            .collect()
    }

    #[test]
    fn multi_document_yaml_with_lists_and_empty_documents() {
        let text = "---\nkind: Namespace\nmetadata: {name: shop}\n---\n---\n\
                    kind: List\nitems:\n- {kind: Pod, metadata: {name: a}}\n\
                    - {kind: DeploymentList, items: [{kind: Deployment, metadata: {name: b}}]}\n";
        let objects = parse(text, "x.yaml").unwrap();
        assert_eq!(names(&objects), ["Namespace/shop", "Pod/a", "Deployment/b"]);
    }

    #[test]
    fn json_object_array_and_stream() {
        let one = parse(r#"{"kind": "Pod", "metadata": {"name": "a"}}"#, "-").unwrap();
        assert_eq!(names(&one), ["Pod/a"]);
        let array = parse(r#"[{"kind": "Pod", "metadata": {"name": "a"}}]"#, "-").unwrap();
        assert_eq!(names(&array), ["Pod/a"]);
        let stream = parse(
            "{\"kind\": \"Pod\", \"metadata\": {\"name\": \"a\"}}\n\t{\"kind\": \"Pod\", \"metadata\": {\"name\": \"b\"}}",
            "-",
        )
        .unwrap();
        assert_eq!(names(&stream), ["Pod/a", "Pod/b"]);
    }

    #[test]
    fn unreadable_input_is_an_error() {
        assert!(matches!(
            parse("kind: [unclosed", "bad.yaml"),
            Err(ManifestError::Syntax { .. })
        ));
        assert!(matches!(
            parse("{\"kind\": ", "bad.json"),
            Err(ManifestError::Syntax { .. })
        ));
        assert!(matches!(
            parse("just a string\n", "s.yaml"),
            Err(ManifestError::NotAnObject { index: 1, .. })
        ));
        assert!(matches!(
            read_inputs(&[PathBuf::from("/nonexistent/portcullis.yaml")]),
            Err(ManifestError::Io { .. })
        ));
    }
}
