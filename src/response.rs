//! Reading token-endpoint responses: size cap, success shapes and error shapes.
//!
//! Shared by every HTTP token source, so "what counts as a credential error" and "what a
//! malformed response is" are decided in one place.

use std::time::{Duration, SystemTime};

use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use crate::error::{Error, Malformed, OAuthErrorCode};
use crate::token::Token;

/// Default cap on a token-endpoint response body: 64 KiB.
pub const DEFAULT_MAX_BODY: usize = 64 * 1024;

/// Longest partner message or body excerpt kept in an error.
const EXCERPT_CHARS: usize = 200;

/// Where the token and its lifetime are in a success response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseShape {
    /// A JSON object.
    Json {
        /// The field holding the access token (`access_token`, `accessToken`).
        token: String,
        /// The field holding the lifetime in seconds, if the partner sends one.
        expires_in: Option<String>,
        /// The field holding a refresh token, if any.
        refresh_token: Option<String>,
        /// The field holding the token type; when present it must say `Bearer`.
        token_type: Option<String>,
    },
    /// The whole body is the token (`text/plain`).
    PlainText,
}

impl ResponseShape {
    /// The OAuth 2.0 shape: `access_token`, `token_type`, `expires_in`, `refresh_token`.
    pub fn oauth2() -> Self {
        Self::Json {
            token: "access_token".into(),
            expires_in: Some("expires_in".into()),
            refresh_token: Some("refresh_token".into()),
            token_type: Some("token_type".into()),
        }
    }

    /// A JSON object whose token is in `token_field`, with no other fields read.
    pub fn json(token_field: impl Into<String>) -> Self {
        Self::Json {
            token: token_field.into(),
            expires_in: None,
            refresh_token: None,
            token_type: None,
        }
    }

    /// Reads the lifetime from `field` (JSON shapes only).
    pub fn with_expires_in(mut self, field: impl Into<String>) -> Self {
        if let Self::Json { expires_in, .. } = &mut self {
            *expires_in = Some(field.into());
        }
        self
    }

    /// Reads a refresh token from `field` (JSON shapes only).
    pub fn with_refresh_token(mut self, field: impl Into<String>) -> Self {
        if let Self::Json { refresh_token, .. } = &mut self {
            *refresh_token = Some(field.into());
        }
        self
    }

    /// Checks that `field`, when present, says `Bearer` (JSON shapes only).
    pub fn with_token_type(mut self, field: impl Into<String>) -> Self {
        if let Self::Json { token_type, .. } = &mut self {
            *token_type = Some(field.into());
        }
        self
    }
}

/// How a partner's error responses look and what they mean.
///
/// Classification of a non-success response, first match wins:
/// 1. a code in [`reauthorize_codes`](Self::reauthorize_codes) →
///    [`Error::ReauthorizationRequired`];
/// 2. a code in [`credential_codes`](Self::credential_codes), or a body containing one of
///    [`credential_texts`](Self::credential_texts) → [`Error::InvalidCredentials`];
/// 3. with [`oauth2`](Self::oauth2), any other RFC 6749 code on a 4xx → [`Error::OAuth`];
/// 4. 400, 401, 403 → [`Error::InvalidCredentials`] (not retried);
/// 5. anything else → [`Error::TokenEndpoint`] (retried when 5xx, 408 or 429).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorShape {
    code_field: Option<String>,
    message_fields: Vec<String>,
    credential_codes: Vec<String>,
    credential_texts: Vec<String>,
    reauthorize_codes: Vec<String>,
    oauth2: bool,
}

impl Default for ErrorShape {
    /// `{"error": code, "error_description": message}` or `{"error": message}`.
    fn default() -> Self {
        Self {
            code_field: Some("error".into()),
            message_fields: vec!["error_description".into(), "error".into(), "message".into()],
            credential_codes: vec!["invalid_client".into()],
            credential_texts: Vec::new(),
            reauthorize_codes: Vec::new(),
            oauth2: false,
        }
    }
}

impl ErrorShape {
    /// RFC 6749 §5.2 errors: `invalid_client` is a credential error, other codes become
    /// [`Error::OAuth`].
    pub fn oauth2() -> Self {
        Self {
            oauth2: true,
            ..Self::default()
        }
    }

    /// Error codes that mean the refresh token is dead (`invalid_grant` on a refresh).
    pub fn reauthorize_codes(mut self, codes: &[&str]) -> Self {
        self.reauthorize_codes = codes.iter().map(|c| (*c).to_owned()).collect();
        self
    }

    /// The JSON field holding a machine-readable error code (default `error`), or `None` for
    /// partners whose `error` field is a human-readable message.
    pub fn code_field(mut self, field: Option<&str>) -> Self {
        self.code_field = field.map(str::to_owned);
        self
    }

    /// The JSON fields holding a human-readable message, first present wins. Default
    /// `error_description`, `error`, `message`.
    pub fn message_fields(mut self, fields: &[&str]) -> Self {
        self.message_fields = fields.iter().map(|c| (*c).to_owned()).collect();
        self
    }

    /// Error codes that mean the credentials are wrong, whatever the status.
    pub fn credential_codes(mut self, codes: &[&str]) -> Self {
        self.credential_codes = codes.iter().map(|c| (*c).to_owned()).collect();
        self
    }

    /// Texts that, found in an error body, mean the credentials are wrong whatever the status
    /// (a partner that answers an unknown user with a 500).
    pub fn credential_texts(mut self, texts: &[&str]) -> Self {
        self.credential_texts = texts.iter().map(|c| (*c).to_owned()).collect();
        self
    }

    /// Classifies a non-success response. `secrets` are scrubbed from any text kept.
    pub(crate) fn classify(
        &self,
        status: StatusCode,
        retry_after: Option<Duration>,
        body: &[u8],
        secrets: &[&SecretString],
    ) -> Error {
        let text = String::from_utf8_lossy(body);
        let object = serde_json::from_slice::<Map<String, Value>>(body).ok();
        let field = |name: &str| {
            object
                .as_ref()
                .and_then(|o| o.get(name))
                .and_then(Value::as_str)
        };
        let code = self.code_field.as_deref().and_then(field);
        // The code as kept in an error: a partner may put a message (echoing a secret) in the
        // code field, so it is cut short and scrubbed like any other text.
        let kept_code = || code.map(|c| excerpt(c, secrets));
        let message = self
            .message_fields
            .iter()
            .find_map(|f| field(f))
            .map(|m| excerpt(m, secrets))
            .unwrap_or_else(|| body_excerpt(&text, secrets));
        let code_in = |list: &[String]| code.is_some_and(|c| list.iter().any(|l| l == c));

        if code_in(&self.reauthorize_codes) {
            return Error::ReauthorizationRequired { message };
        }
        if code_in(&self.credential_codes)
            || self
                .credential_texts
                .iter()
                .any(|t| text.contains(t.as_str()))
        {
            return Error::InvalidCredentials {
                message,
                code: kept_code(),
            };
        }
        if self.oauth2 && status.is_client_error() {
            if let Some(code) = kept_code() {
                let description = field("error_description").map(|d| excerpt(d, secrets));
                return Error::OAuth {
                    code: OAuthErrorCode::parse(&code),
                    description,
                };
            }
        }
        match status {
            StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Error::InvalidCredentials {
                    message,
                    code: kept_code(),
                }
            }
            _ => Error::TokenEndpoint {
                status,
                excerpt: message,
                retry_after,
            },
        }
    }
}

/// Reads a response: the status, `Retry-After`, content type and a body of at most `limit`
/// bytes. Larger bodies fail with [`Malformed::TooLarge`] without being read to the end.
pub(crate) async fn read_capped(
    mut res: reqwest::Response,
    limit: usize,
    now: SystemTime,
) -> Result<RawResponse, Error> {
    let status = res.status();
    let retry_after = res
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, now));
    let content_type = res
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let too_large = Error::malformed(Malformed::TooLarge { limit });
    if res.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large);
    }
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(Error::from_reqwest)? {
        if body.len() + chunk.len() > limit {
            return Err(too_large);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(RawResponse {
        status,
        retry_after,
        content_type,
        body,
    })
}

/// A token-endpoint response read into memory.
#[derive(Debug)]
pub(crate) struct RawResponse {
    pub(crate) status: StatusCode,
    pub(crate) retry_after: Option<Duration>,
    pub(crate) content_type: String,
    pub(crate) body: Vec<u8>,
}

impl RawResponse {
    /// Turns the response into a token (success) or the classified error.
    pub(crate) fn into_token(
        self,
        shape: &ResponseShape,
        errors: &ErrorShape,
        secrets: &[&SecretString],
    ) -> Result<Token, Error> {
        if !self.status.is_success() {
            return Err(errors.classify(self.status, self.retry_after, &self.body, secrets));
        }
        parse_success(shape, &self.content_type, &self.body)
    }
}

/// Parses a success body into a token.
pub(crate) fn parse_success(
    shape: &ResponseShape,
    content_type: &str,
    body: &[u8],
) -> Result<Token, Error> {
    let bad = |m| Err(Error::malformed(m));
    if body.iter().all(u8::is_ascii_whitespace) {
        return bad(Malformed::EmptyBody);
    }
    if content_type.starts_with("text/html") || looks_like_html(body) {
        return bad(Malformed::Html);
    }
    match shape {
        ResponseShape::PlainText => {
            if content_type.contains("json") || body.first() == Some(&b'{') {
                return bad(Malformed::UnexpectedContentType {
                    expected: "text/plain".into(),
                    found: if content_type.is_empty() {
                        "a json body".into()
                    } else {
                        content_type.to_owned()
                    },
                });
            }
            let text =
                std::str::from_utf8(body).map_err(|_| Error::malformed(Malformed::NotUtf8))?;
            // `Token` trims and rejects CR, LF and other controls (a header-injection attempt);
            // what is left to refuse is a space inside the token.
            let token = Token::bearer(text)?;
            if token.secret().expose_secret().contains(' ') {
                return bad(Malformed::InvalidField {
                    field: "token".into(),
                    problem: "contains whitespace".into(),
                });
            }
            Ok(token)
        }
        ResponseShape::Json {
            token,
            expires_in,
            refresh_token,
            token_type,
        } => {
            let object: Map<String, Value> = match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(o)) => o,
                Ok(_) => return bad(Malformed::InvalidJson("not a json object".into())),
                Err(e) => return bad(Malformed::InvalidJson(json_problem(&e))),
            };
            let value = string_field(&object, token)?
                .ok_or_else(|| Error::malformed(Malformed::MissingField(token.clone())))?;
            if let Some(tt) = token_type {
                if let Some(kind) = string_field(&object, tt)? {
                    if !kind.eq_ignore_ascii_case("bearer") {
                        return bad(Malformed::InvalidField {
                            field: tt.clone(),
                            problem: "is not `Bearer`".into(),
                        });
                    }
                }
            }
            let mut t = Token::bearer(value)?;
            if let Some(field) = expires_in {
                if let Some(lifetime) = lifetime_field(&object, field)? {
                    t = t.expires_in(lifetime);
                }
            }
            if let Some(field) = refresh_token {
                if let Some(rt) = string_field(&object, field)? {
                    if !rt.trim().is_empty() {
                        t = t.with_refresh_token(SecretString::from(rt.to_owned()));
                    }
                }
            }
            Ok(t)
        }
    }
}

fn string_field<'a>(object: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, Error> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(Error::malformed(Malformed::InvalidField {
            field: name.to_owned(),
            problem: format!("is a {}, not a string", json_kind(other)),
        })),
    }
}

/// Reads `expires_in`. Numbers and numeric strings are accepted; zero or negative values
/// carry no usable lifetime and are ignored (the JWT `exp` or "until a 401" applies), with a
/// warning; anything else is malformed.
fn lifetime_field(object: &Map<String, Value>, name: &str) -> Result<Option<Duration>, Error> {
    let invalid = |problem: &str| {
        Error::malformed(Malformed::InvalidField {
            field: name.to_owned(),
            problem: problem.to_owned(),
        })
    };
    let secs: f64 = match object.get(name) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_f64().ok_or_else(|| invalid("is not a number"))?,
        Some(Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| invalid("is a string that is not a number"))?,
        Some(other) => return Err(invalid(&format!("is a {}, not a number", json_kind(other)))),
    };
    if !secs.is_finite() {
        return Err(invalid("is not a finite number"));
    }
    if secs <= 0.0 {
        tracing::warn!(
            field = name,
            "token lifetime is zero or negative; ignoring it"
        );
        return Ok(None);
    }
    // Clamped by Token::expires_in; cap here first so the conversion cannot overflow.
    Ok(Some(Duration::from_secs_f64(secs.min(1e9))))
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// serde_json's message without the input (it never quotes input, but stay short).
fn json_problem(e: &serde_json::Error) -> String {
    format!(
        "{:?} error at line {} column {}",
        e.classify(),
        e.line(),
        e.column()
    )
    .to_lowercase()
}

fn looks_like_html(body: &[u8]) -> bool {
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(0);
    let head = &body[start..body.len().min(start + 15)];
    head.first() == Some(&b'<')
}

/// `Retry-After` as seconds or an HTTP date.
fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    httpdate::parse_http_date(value)
        .ok()
        .map(|at| at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A short excerpt of a partner message, with secrets replaced.
pub(crate) fn excerpt(text: &str, secrets: &[&SecretString]) -> String {
    let mut out: String = text
        .chars()
        .filter(|c| !c.is_control())
        .take(EXCERPT_CHARS)
        .collect();
    for s in secrets {
        let s = s.expose_secret();
        if s.len() >= 4 {
            out = out.replace(s, "[redacted]");
        }
    }
    // A secret cut by the length limit would survive the replace above; cut it out too.
    for s in secrets {
        let s = s.expose_secret();
        for n in (4..s.len()).rev() {
            if s.is_char_boundary(n) && out.ends_with(&s[..n]) {
                out.truncate(out.len() - n);
                out.push_str("[redacted]");
                break;
            }
        }
    }
    if text.chars().count() > EXCERPT_CHARS {
        out.push('…');
    }
    out
}

fn body_excerpt(text: &str, secrets: &[&SecretString]) -> String {
    if text.trim().is_empty() {
        "empty body".to_owned()
    } else if looks_like_html(text.as_bytes()) {
        "html page".to_owned()
    } else {
        excerpt(text.trim(), secrets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn excerpt_scrubs_whole_and_cut_secrets() {
        let s = secret("hunter2-secret");
        assert_eq!(
            excerpt("bad hunter2-secret here", &[&s]),
            "bad [redacted] here"
        );
        let long = format!("{}hunter2-sec", "x".repeat(EXCERPT_CHARS - 11));
        let long = format!("{long}ret and more");
        let out = excerpt(&long, &[&s]);
        assert!(!out.contains("hunter2"), "{out}");
    }

    #[test]
    fn error_codes_are_scrubbed_like_messages() {
        let s = secret("hunter2-secret");
        let body = br#"{"error":"bad hunter2-secret"}"#;
        let err = ErrorShape::default().classify(StatusCode::UNAUTHORIZED, None, body, &[&s]);
        assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
        let err = ErrorShape::oauth2().classify(StatusCode::BAD_REQUEST, None, body, &[&s]);
        assert!(matches!(err, Error::OAuth { .. }), "{err:?}");
        assert!(!format!("{err:?} {err}").contains("hunter2"), "{err:?}");
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(parse_retry_after(&date, now), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn expires_in_variants() {
        let shape = ResponseShape::oauth2();
        let parse = |body: &str| parse_success(&shape, "application/json", body.as_bytes());
        use crate::token::Expiry;
        assert_eq!(
            parse(r#"{"access_token":"a","expires_in":60}"#)
                .unwrap()
                .expiry(),
            Expiry::In(Duration::from_secs(60))
        );
        assert_eq!(
            parse(r#"{"access_token":"a","expires_in":"60"}"#)
                .unwrap()
                .expiry(),
            Expiry::In(Duration::from_secs(60))
        );
        assert_eq!(
            parse(r#"{"access_token":"a","expires_in":0}"#)
                .unwrap()
                .expiry(),
            Expiry::Unknown
        );
        assert_eq!(
            parse(r#"{"access_token":"a","expires_in":-5}"#)
                .unwrap()
                .expiry(),
            Expiry::Unknown
        );
        assert_eq!(
            parse(r#"{"access_token":"a","expires_in":1e300}"#)
                .unwrap()
                .expiry(),
            Expiry::In(crate::MAX_TOKEN_LIFETIME)
        );
        assert!(matches!(
            parse(r#"{"access_token":"a","expires_in":"soon"}"#),
            Err(Error::MalformedResponse(Malformed::InvalidField { .. }))
        ));
        assert!(matches!(
            parse(r#"{"access_token":"a","expires_in":true}"#),
            Err(Error::MalformedResponse(Malformed::InvalidField { .. }))
        ));
    }
}
