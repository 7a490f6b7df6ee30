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

mod scrub;

/// Default cap on a token-endpoint response body: 64 KiB.
pub const DEFAULT_MAX_BODY: usize = 64 * 1024;

/// Longest word of a plain-text error body that is still quoted: longer ones may be tokens.
const MAX_QUOTED_WORD: usize = 32;

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

    /// [`classify_typed`](Self::classify_typed) of a response without a `Content-Type`.
    #[cfg(test)]
    pub(crate) fn classify(
        &self,
        status: StatusCode,
        retry_after: Option<Duration>,
        body: &[u8],
        secrets: &[&SecretString],
    ) -> Error {
        self.classify_typed(status, retry_after, "", body, secrets)
    }

    /// Classifies a non-success response whose `Content-Type` is `content_type` (lower
    /// case). Text is kept only from the known message and code fields, and from a short
    /// sentence in a `text/plain` (or untyped) body, scrubbed of every form of `secrets`;
    /// any other body is described (status, content type, length), not quoted.
    pub(crate) fn classify_typed(
        &self,
        status: StatusCode,
        retry_after: Option<Duration>,
        content_type: &str,
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
        // The code as kept in an error: a code of RFC 6749 or of this shape's lists is kept
        // as it is; anything else may be a message (echoing a secret), so it is scrubbed
        // like any other text, and dropped if it cannot be.
        let known_code = |c: &str| {
            !matches!(OAuthErrorCode::parse(c), OAuthErrorCode::Other(_))
                || self.credential_codes.iter().any(|l| l == c)
                || self.reauthorize_codes.iter().any(|l| l == c)
        };
        let quote_code = |c: &str| {
            if known_code(c) {
                Some(c.to_owned())
            } else {
                scrub::quote(c, secrets).ok()
            }
        };
        let kept_code = || code.and_then(quote_code);
        let known_message = self.message_fields.iter().find_map(|f| field(f));
        // `with_status`: whether a description of the body names the status (the error
        // variant does not carry it).
        let message = |with_status: bool| match known_message {
            Some(m) => excerpt(m, secrets),
            None => body_text(with_status.then_some(status), content_type, body, secrets),
        };
        let code_in = |list: &[String]| code.is_some_and(|c| list.iter().any(|l| l == c));

        if code_in(&self.reauthorize_codes) {
            return Error::ReauthorizationRequired {
                reason: crate::error::ReauthorizationReason::Refused,
                message: message(true),
            };
        }
        if code_in(&self.credential_codes)
            || self
                .credential_texts
                .iter()
                .any(|t| text.contains(t.as_str()))
        {
            return Error::InvalidCredentials {
                message: message(true),
                code: kept_code(),
            };
        }
        // A 429 or 408 says "later", whatever code it carries (Auth0 answers 429 with
        // `{"error":"too_many_requests"}`): it stays a retryable endpoint failure that keeps
        // its `Retry-After`.
        let try_later =
            status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::REQUEST_TIMEOUT;
        if self.oauth2 && status.is_client_error() && !try_later {
            if let Some(code) = code {
                let description = field("error_description").map(|d| excerpt(d, secrets));
                let code = match quote_code(code) {
                    Some(code) => OAuthErrorCode::parse(&code),
                    None => OAuthErrorCode::Other("[withheld]".to_owned()),
                };
                return Error::OAuth { code, description };
            }
        }
        match status {
            StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Error::InvalidCredentials {
                    message: message(true),
                    code: kept_code(),
                }
            }
            _ => Error::TokenEndpoint {
                status,
                excerpt: message(false),
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
            return Err(errors.classify_typed(
                self.status,
                self.retry_after,
                &self.content_type,
                &self.body,
                secrets,
            ));
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

/// A partner message from a known field, as an error keeps it: its start with every form of
/// `secrets` replaced, or, when that cannot be done safely, a note that it was not quoted.
pub(crate) fn excerpt(text: &str, secrets: &[&SecretString]) -> String {
    match scrub::quote(text, secrets) {
        Ok(quoted) => quoted,
        Err(why) => format!(
            "a {}-byte message, not quoted: {}",
            text.len(),
            why.reason()
        ),
    }
}

/// What an error body without a known message field tells: a short plain-text sentence (a
/// partner's documented `text/plain` error) is quoted, scrubbed; anything else is described
/// by its status (when given), content type and length, never quoted.
fn body_text(
    status: Option<StatusCode>,
    content_type: &str,
    body: &[u8],
    secrets: &[&SecretString],
) -> String {
    if body.iter().all(u8::is_ascii_whitespace) {
        return "empty body".to_owned();
    }
    if content_type.starts_with("text/html") || looks_like_html(body) {
        return "html page".to_owned();
    }
    let media_type = media_type(content_type, secrets);
    let plain = media_type == "text/plain" || content_type.trim().is_empty();
    let sentence = std::str::from_utf8(body)
        .ok()
        .map(str::trim)
        .filter(|t| plain && looks_like_a_sentence(t));
    let withheld = match sentence.map(|t| scrub::quote(t, secrets)) {
        Some(Ok(quoted)) => return quoted,
        Some(Err(why)) => Some(why),
        None => None,
    };
    let mut described = format!("unrecognised {}-byte {media_type} body", body.len());
    if let Some(status) = status {
        described.push_str(&format!(" (status {})", status.as_u16()));
    }
    if let Some(why) = withheld {
        described.push_str(&format!(", not quoted: {}", why.reason()));
    }
    described
}

/// The media type of a `Content-Type` (parameters dropped) when it is a well-formed one
/// that holds no secret; `untyped` when there is none.
fn media_type(content_type: &str, secrets: &[&SecretString]) -> String {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if essence.is_empty() {
        return "untyped".to_owned();
    }
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    let well_formed = essence.len() <= 64
        && essence
            .split_once('/')
            .is_some_and(|(kind, sub)| token(kind) && token(sub));
    // The usual types are shown as they are; anything else only when it holds no secret.
    const USUAL: [&str; 7] = [
        "text/plain",
        "text/html",
        "text/xml",
        "application/json",
        "application/problem+json",
        "application/xml",
        "application/octet-stream",
    ];
    let usual = USUAL.iter().any(|u| essence.eq_ignore_ascii_case(u));
    let safe = usual || scrub::quote(essence, secrets).is_ok_and(|q| q == essence);
    if well_formed && safe {
        essence.to_ascii_lowercase()
    } else {
        "unknown-type".to_owned()
    }
}

/// A short, single-line plain-text sentence, such as `Channel manager not found`: no
/// control characters, not JSON, and no word long enough to be a token.
fn looks_like_a_sentence(text: &str) -> bool {
    let single_word = !text.contains(' ');
    text.chars().count() <= scrub::EXCERPT_CHARS
        && !text.starts_with(['{', '['])
        && !text.chars().any(char::is_control)
        && text
            .split(' ')
            .all(|word| word.chars().count() <= MAX_QUOTED_WORD)
        // A lone word is quoted only when it is letters (`Forbidden`), not a token.
        && (!single_word || text.chars().all(char::is_alphabetic))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    /// The secret of the encoding tests: `/` and `+` change under JSON and form encoding.
    const S: &str = "S3/cr+t-9x";

    #[test]
    fn excerpt_scrubs_whole_and_cut_secrets() {
        let s = secret("hunter2-secret");
        assert_eq!(
            excerpt("bad hunter2-secret here", &[&s]),
            "bad [redacted] here"
        );
        let long = format!("{}hunter2-sec", "x".repeat(scrub::EXCERPT_CHARS - 11));
        let long = format!("{long}ret and more");
        let out = excerpt(&long, &[&s]);
        assert!(!out.contains("hunter2"), "{out}");
        assert!(out.ends_with('…'), "{out}");
    }

    /// Every spelling a partner may echo: none survives, whether it is replaced or the text
    /// is withheld.
    #[test]
    fn excerpt_scrubs_every_encoding_of_a_secret() {
        let s = secret(S);
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("client-id:{S}"));
        let echoes = [
            // raw, JSON-escaped (`\/`, `\u00xx`, escaped quotes and backslashes)
            format!("bad {S}"),
            "bad S3\\/cr+t-9x".to_owned(),
            "bad \\u0053\\u0033\\u002fcr\\u002bt-9x".to_owned(),
            "bad S3\\u002Fcr\\u002Bt-9x".to_owned(),
            // form- and percent-encoded, both hex cases, `+` for a space
            "client_secret=S3%2Fcr%2Bt-9x&x=1".to_owned(),
            "client_secret=S3%2fcr%2bt-9x&x=1".to_owned(),
            "client_secret=%53%33%2F%63%72%2B%74%2D%39%78".to_owned(),
            "double S3%252Fcr%252Bt-9x".to_owned(),
            // JSON-escaped form encoding, and form-encoded JSON escaping
            "S3%2Fcr%2Bt-9x\\u0026".to_owned(),
            "S3%5C%2Fcr%2Bt-9x".to_owned(),
            // inside an echoed Basic header, at any alignment, either alphabet
            format!("got Authorization: Basic {basic}"),
            format!(
                "got {}",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("ab:{S}!"))
            ),
            format!(
                "got {}",
                base64::engine::general_purpose::STANDARD.encode(S)
            ),
        ];
        for echo in echoes {
            let out = excerpt(&echo, &[&s]);
            for view in scrub_views(&out) {
                assert!(!view.contains(S), "{echo:?} gave {out:?}");
            }
            assert!(
                !out.contains("S3") || out.contains("[redacted]") || out.contains("not quoted"),
                "{echo:?} gave {out:?}"
            );
        }
    }

    fn scrub_views(text: &str) -> Vec<String> {
        // The decoders are those of the scrubber; the base64 check decodes on its own.
        let mut views = vec![text.to_owned()];
        for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || "+/=-_".contains(c))) {
            for engine in [
                base64::engine::general_purpose::STANDARD,
                base64::engine::general_purpose::URL_SAFE,
            ] {
                if let Ok(bytes) = engine.decode(word) {
                    views.push(String::from_utf8_lossy(&bytes).into_owned());
                }
            }
        }
        views
    }

    #[test]
    fn common_echoes_are_replaced_and_the_rest_stays_readable() {
        let s = secret(S);
        for echo in [
            format!("bad secret {S} here"),
            "bad secret S3\\/cr+t-9x here".to_owned(),
            "bad secret S3%2Fcr%2Bt-9x here".to_owned(),
            "bad secret S3%2fcr%2bt-9x here".to_owned(),
        ] {
            assert_eq!(
                excerpt(&echo, &[&s]),
                "bad secret [redacted] here",
                "{echo}"
            );
        }
        let spaced = secret("two words here");
        assert_eq!(
            excerpt("secret=two+words+here!", &[&spaced]),
            "secret=[redacted]!"
        );
    }

    #[test]
    fn short_secrets_withhold_every_partner_text() {
        // Upper case: no description of this crate contains them.
        for short in ["Z", "Z9", "Z9/"] {
            let s = secret(short);
            let out = excerpt(&format!("wrong password {short}"), &[&s]);
            assert_eq!(
                out,
                format!(
                    "a {}-byte message, not quoted: a credential is too short to scrub reliably",
                    15 + short.len()
                )
            );
            let body = format!("wrong password {short}");
            let err = ErrorShape::default().classify_typed(
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                "text/plain",
                body.as_bytes(),
                &[&s],
            );
            assert!(!format!("{err} {err:?}").contains(short), "{err:?}");
        }
        // An empty secret cannot leak and does not silence the partner.
        let empty = secret("");
        assert_eq!(excerpt("no such user", &[&empty]), "no such user");
    }

    #[test]
    fn unknown_bodies_are_described_not_quoted() {
        let s = secret(S);
        let shape = ErrorShape::default();
        let describe = |status: u16, content_type: &str, body: &str| {
            let status = StatusCode::from_u16(status).unwrap();
            match shape.classify_typed(status, None, content_type, body.as_bytes(), &[&s]) {
                Error::InvalidCredentials { message, .. } => message,
                Error::TokenEndpoint { excerpt, .. } => excerpt,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(
            describe(
                500,
                "text/plain; charset=utf-8",
                "Channel manager not found"
            ),
            "Channel manager not found"
        );
        assert_eq!(
            describe(503, "", "Service Unavailable"),
            "Service Unavailable"
        );
        assert_eq!(describe(401, "text/plain", "Forbidden"), "Forbidden");
        assert_eq!(
            describe(
                401,
                "text/plain",
                "upstream said client_secret=S3%2Fcr%2Bt-9x&client_id=x"
            ),
            "unrecognised 54-byte text/plain body (status 401)"
        );
        assert_eq!(
            describe(503, "text/plain", &format!("rejected {S} again")),
            "rejected [redacted] again"
        );
        assert_eq!(
            describe(503, "text/plain", "rejected S3\\u002fcr+t-9x again"),
            "unrecognised 30-byte text/plain body, not quoted: it echoes a credential"
        );
        assert_eq!(
            describe(
                503,
                "text/plain",
                "eyJhbGciOiJIUzI1NiJ9eyJzdWIiOiIxMjM0NTY3ODkwIn0"
            ),
            "unrecognised 47-byte text/plain body"
        );
        assert_eq!(
            describe(500, "application/json", r#"{"detail":"oops"}"#),
            "unrecognised 17-byte application/json body"
        );
        assert_eq!(
            describe(502, "application/xml", "<?xml?><e>x</e>"),
            "html page"
        );
        assert_eq!(
            describe(400, &format!("text/{S}"), "no"),
            "unrecognised 2-byte unknown-type body (status 400)"
        );
        assert_eq!(describe(500, "text/plain", " \n"), "empty body");
    }

    #[test]
    fn a_429_with_an_oauth_code_stays_retryable_with_its_retry_after() {
        let body = br#"{"error":"too_many_requests","error_description":"slow down"}"#;
        for status in [StatusCode::TOO_MANY_REQUESTS, StatusCode::REQUEST_TIMEOUT] {
            let err =
                ErrorShape::oauth2().classify(status, Some(Duration::from_secs(7)), body, &[]);
            assert!(
                matches!(err, Error::TokenEndpoint { status: s, .. } if s == status),
                "{err:?}"
            );
            assert!(err.is_transient());
            assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
        }
    }

    #[test]
    fn error_codes_are_scrubbed_like_messages() {
        let s = secret("hunter2-secret");
        let body = br#"{"error":"bad hunter2-secret"}"#;
        let classify = |shape: ErrorShape| {
            shape.classify_typed(
                StatusCode::BAD_REQUEST,
                None,
                "application/json",
                body,
                &[&s],
            )
        };
        let err = classify(ErrorShape::default());
        assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
        let err = classify(ErrorShape::oauth2());
        assert!(matches!(err, Error::OAuth { .. }), "{err:?}");
        assert!(!format!("{err:?} {err}").contains("hunter2"), "{err:?}");

        // A code that holds the secret in a form that cannot be replaced is dropped.
        let body = br#"{"error":"x\\u0068unter2-secret","error_description":"no"}"#;
        let err = ErrorShape::default().classify_typed(
            StatusCode::BAD_REQUEST,
            None,
            "application/json",
            body,
            &[&s],
        );
        match &err {
            Error::InvalidCredentials { message, code } => {
                assert_eq!(message, "no");
                assert_eq!(code, &None);
            }
            other => panic!("{other:?}"),
        }
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
            Expiry::In(crate::token::MAX_TOKEN_LIFETIME)
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
