//! A 200 from the token endpoint that is not a usable token answer: the exact
//! `Error::MalformedResponse`, one fetch (a malformed answer is not retried), no API call.

use httpmock::MockServer;
use reqwest_partner_auth::clock::ManualClock;
use reqwest_partner_auth::engine::DEFAULT_MAX_BODY;
use reqwest_partner_auth::error::Malformed;
use reqwest_partner_auth::Error;
use serde_json::{json, Value};

use crate::bearer::{
    api, api_url, failing_api, layer, token_endpoint, Bearer, Expiring, JsonBearer, Shape,
};
use crate::common;
use crate::harness::SECRET;

/// A login or maintenance page where the token should be.
const HTML: &str = "<!DOCTYPE html><html><body>Maintenance</body></html>";

/// The error a row expects.
#[derive(Debug)]
enum Want {
    /// Exactly this one.
    Is(Malformed),
    /// `InvalidField` for this field (the problem is the crate's wording).
    InvalidField(&'static str),
    /// `InvalidJson` (the message is serde's).
    InvalidJson,
}

/// A token endpoint of `P` answering 200 with `content_type` and `body`: the request fails
/// with `want`, after one fetch and no API call.
async fn assert_malformed<P: Bearer>(content_type: &'static str, body: String, want: Want) {
    let shown = format!(
        "{content_type} {:?}",
        body.chars().take(80).collect::<String>()
    );
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = token_endpoint::<P>(&server, SECRET, move |_| {
        common::response(200, content_type, body.clone())
    })
    .await;
    let api = api::<P>(&server, &[]).await;
    let client = common::client(layer::<P>(&server, &clock, SECRET));

    let err = failing_api::<P>(&client, &api_url::<P>(&server)).await;

    let name = P::NAME;
    match (&err, &want) {
        (Error::MalformedResponse(m), Want::Is(w)) => assert_eq!(m, w, "{name}: {shown}"),
        (
            Error::MalformedResponse(Malformed::InvalidField { field, .. }),
            Want::InvalidField(f),
        ) => {
            assert_eq!(field, f, "{name}: {shown}");
        }
        (Error::MalformedResponse(Malformed::InvalidJson(_)), Want::InvalidJson) => {}
        _ => panic!("{name}: {shown}: expected {want:?}, got {err:?}"),
    }
    assert_eq!(token.calls_async().await, 1, "{name}: {shown}: not retried");
    assert_eq!(api.calls_async().await, 0, "{name}: {shown}: no API call");
}

/// What a JSON body is to `P`: broken JSON for a JSON partner; another format than the
/// contract's for a plain-text one.
fn not_json<P: Bearer>() -> Want {
    match P::SHAPE {
        Shape::Json => Want::InvalidJson,
        Shape::PlainText => Want::Is(Malformed::UnexpectedContentType {
            expected: "text/plain".into(),
            found: "application/json".into(),
        }),
    }
}

/// An HTML page (a login or proxy page answered with 200) is `Malformed::Html`.
pub(crate) async fn html_page<P: Bearer>() {
    let want = Want::Is(Malformed::Html);
    assert_malformed::<P>("text/html; charset=utf-8", HTML.into(), want).await;
}

/// An HTML page labelled with the contract's own content type is still `Malformed::Html`.
pub(crate) async fn html_page_labelled_as_the_contract_type<P: Bearer>() {
    let want = Want::Is(Malformed::Html);
    assert_malformed::<P>(P::SUCCESS_CONTENT_TYPE, HTML.into(), want).await;
}

/// An empty body is `Malformed::EmptyBody`.
pub(crate) async fn empty_body<P: Bearer>() {
    let want = Want::Is(Malformed::EmptyBody);
    assert_malformed::<P>(P::SUCCESS_CONTENT_TYPE, String::new(), want).await;
}

/// A body of whitespace only is `Malformed::EmptyBody`.
pub(crate) async fn blank_body<P: Bearer>() {
    let want = Want::Is(Malformed::EmptyBody);
    assert_malformed::<P>(P::SUCCESS_CONTENT_TYPE, " \r\n ".into(), want).await;
}

/// JSON cut short: `Malformed::InvalidJson` (a plain-text partner: not its format).
pub(crate) async fn truncated_json<P: Bearer>() {
    let body = r#"{"access_token":"#.to_owned();
    assert_malformed::<P>("application/json", body, not_json::<P>()).await;
}

/// A JSON array instead of an object: `Malformed::InvalidJson` (a plain-text partner: not its
/// format).
pub(crate) async fn json_array<P: Bearer>() {
    assert_malformed::<P>("application/json", "[]".into(), not_json::<P>()).await;
}

/// A token with CR or LF inside cannot travel in a header (header injection):
/// `Malformed::IllegalHeaderValue`.
pub(crate) async fn token_with_cr_or_lf<P: Bearer>() {
    for token in ["abc\r\nX-Evil: 1", "abc\ndef"] {
        let want = Want::Is(Malformed::IllegalHeaderValue);
        assert_malformed::<P>(P::SUCCESS_CONTENT_TYPE, P::success_body(token), want).await;
    }
}

/// A success answer one byte over the size cap is `Malformed::TooLarge` (not read to the end).
pub(crate) async fn body_over_the_size_cap<P: Bearer>() {
    let body = match P::SHAPE {
        Shape::Json => {
            let success = P::success_body("tok");
            let padding = "x".repeat(DEFAULT_MAX_BODY);
            format!(r#"{{"padding":"{padding}",{}"#, &success[1..])
        }
        Shape::PlainText => "t".repeat(DEFAULT_MAX_BODY + 1),
    };
    assert!(body.len() > DEFAULT_MAX_BODY);
    let want = Want::Is(Malformed::TooLarge {
        limit: DEFAULT_MAX_BODY,
    });
    assert_malformed::<P>(P::SUCCESS_CONTENT_TYPE, body, want).await;
}

/// The success answer of `P` with its field `field` set to `value` (removed for `None`).
fn with_field<P: JsonBearer>(field: &str, value: Option<Value>) -> String {
    let mut object = P::success_json("tok");
    match value {
        Some(value) => object.insert(field.to_owned(), value),
        None => object.remove(field),
    };
    Value::Object(object).to_string()
}

/// An answer without the token field is `Malformed::MissingField` naming it.
pub(crate) async fn token_field_missing<P: JsonBearer>() {
    let body = with_field::<P>(P::TOKEN_FIELD, None);
    let want = Want::Is(Malformed::MissingField(P::TOKEN_FIELD.into()));
    assert_malformed::<P>(P::SUCCESS_CONTENT_TYPE, body, want).await;
}

/// A token that is a number is `Malformed::InvalidField` naming the field.
pub(crate) async fn token_field_not_a_string<P: JsonBearer>() {
    let body = with_field::<P>(P::TOKEN_FIELD, Some(json!(12345)));
    let want = Want::InvalidField(P::TOKEN_FIELD);
    assert_malformed::<P>(P::SUCCESS_CONTENT_TYPE, body, want).await;
}

/// An empty token is `Malformed::EmptyToken`.
pub(crate) async fn token_field_empty<P: JsonBearer>() {
    let body = with_field::<P>(P::TOKEN_FIELD, Some(json!("")));
    let want = Want::Is(Malformed::EmptyToken);
    assert_malformed::<P>(P::SUCCESS_CONTENT_TYPE, body, want).await;
}

/// A lifetime that is an object is `Malformed::InvalidField` naming the field.
pub(crate) async fn lifetime_as_an_object<P: Expiring>() {
    let body = with_field::<P>(P::LIFETIME_FIELD, Some(json!({ "secs": 3600 })));
    let want = Want::InvalidField(P::LIFETIME_FIELD);
    assert_malformed::<P>(P::SUCCESS_CONTENT_TYPE, body, want).await;
}

/// A lifetime that is text but not a number is `Malformed::InvalidField` naming the field.
pub(crate) async fn lifetime_as_text<P: Expiring>() {
    let body = with_field::<P>(P::LIFETIME_FIELD, Some(json!("an hour")));
    let want = Want::InvalidField(P::LIFETIME_FIELD);
    assert_malformed::<P>(P::SUCCESS_CONTENT_TYPE, body, want).await;
}
