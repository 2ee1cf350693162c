//! Files: attachments users upload (served at `/attachments/{id}/{name}` as Discord's CDN
//! would serve them) and files the bot sends (multipart requests: the `payload_json` part is
//! checked against the spec like any JSON body; each `files[n]` part becomes an attachment of
//! the message, downloadable the same way).

use serde_json::{Value, json};

/// A file kept by the fake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Upload {
    pub filename: String,
    pub bytes: Vec<u8>,
}

/// The attachment object Discord returns for an upload.
pub(crate) fn attachment(id: u64, upload: &Upload, rest_url: &str) -> Value {
    let url = format!("{rest_url}/attachments/{id}/{}", upload.filename);
    json!({
        "id": id.to_string(),
        "filename": upload.filename,
        "size": upload.bytes.len(),
        "url": url,
        "proxy_url": url,
        "content_type": "application/octet-stream",
    })
}

/// A multipart body: the JSON part and the files, in part order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Multipart {
    pub payload_json: Option<Vec<u8>>,
    pub files: Vec<(usize, Upload)>,
}

/// Splits a `multipart/form-data` body (RFC 7578) by the boundary of its `content_type`.
///
/// # Errors
/// No boundary, or a part without headers.
pub(crate) fn parse_multipart(content_type: &str, body: &[u8]) -> Result<Multipart, String> {
    let boundary = content_type
        .split(';')
        .map(str::trim)
        .find(|p| p.to_ascii_lowercase().starts_with("boundary="))
        .map(|p| &p["boundary=".len()..])
        .map(|b| b.trim_matches('"'))
        .ok_or("multipart body without a boundary")?;
    let delimiter = format!("--{boundary}");
    let mut out = Multipart::default();
    for part in split(body, delimiter.as_bytes()).into_iter().skip(1) {
        if part.starts_with(b"--") {
            break;
        }
        let part = part.strip_prefix(b"\r\n").unwrap_or(part);
        let part = part.strip_suffix(b"\r\n").unwrap_or(part);
        let end = find(part, b"\r\n\r\n").ok_or("a multipart part without headers")?;
        let headers = String::from_utf8_lossy(&part[..end]).into_owned();
        let content = part[end + 4..].to_vec();
        let param = |name: &str| {
            headers
                .lines()
                .flat_map(|line| line.split(';'))
                .map(str::trim)
                .find(|p| p.to_ascii_lowercase().starts_with(&format!("{name}=")))
                .map(|p| &p[name.len() + 1..])
                .map(|v| v.trim_matches('"').to_owned())
        };
        let name = param("name").unwrap_or_default();
        if name == "payload_json" {
            out.payload_json = Some(content);
        } else if let Some(n) = name
            .strip_prefix("files[")
            .and_then(|r| r.strip_suffix(']'))
            .and_then(|n| n.parse().ok())
        {
            let filename = param("filename").unwrap_or_else(|| format!("file{n}"));
            out.files.push((
                n,
                Upload {
                    filename,
                    bytes: content,
                },
            ));
        }
    }
    Ok(out)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn split<'a>(mut body: &'a [u8], delimiter: &[u8]) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    while let Some(at) = find(body, delimiter) {
        parts.push(&body[..at]);
        body = &body[at + delimiter.len()..];
    }
    parts.push(body);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_parts_are_split_into_the_json_and_the_files() {
        let body = b"--XYZ\r\nContent-Disposition: form-data; name=\"files[0]\"; filename=\"a.jsonl\"\r\nContent-Type: application/octet-stream\r\n\r\nline 1\nline 2\r\n--XYZ\r\nContent-Disposition: form-data; name=\"payload_json\"\r\n\r\n{\"type\":4}\r\n--XYZ--\r\n";
        let parsed = parse_multipart("multipart/form-data; boundary=XYZ", body).expect("parse");
        assert_eq!(parsed.payload_json.as_deref(), Some(&b"{\"type\":4}"[..]));
        assert_eq!(parsed.files.len(), 1);
        assert_eq!(parsed.files[0].0, 0);
        assert_eq!(parsed.files[0].1.filename, "a.jsonl");
        assert_eq!(parsed.files[0].1.bytes, b"line 1\nline 2");
        assert!(parse_multipart("multipart/form-data", body).is_err());
    }
}
