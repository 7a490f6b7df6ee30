//! Targeter: JSON `{api_key, api_secret}` to `/api/auth/token`, an OAuth-style answer with a
//! one-hour `expires_in`, errors `{"error": "<message>"}`.

use httpmock::When;
use reqwest_partner_auth::{targeter, AuthMiddleware, Error};
use serde_json::{json, Map, Value};
use url::Url;

use crate::bearer::{Answer, Bearer, Expiring, JsonBearer, Production, Shape};
use crate::harness::{EnvValue, Partner};

const API_KEY: &str = "YOUR_ISSUED_PARTNER_KEY";

pub(crate) struct Targeter;

impl Partner for Targeter {
    const NAME: &'static str = "targeter";
    type Credentials = targeter::Credentials;
    const ENV: &'static [(&'static str, EnvValue)] = &[
        ("TARGETER_API_KEY", EnvValue::Public(API_KEY)),
        ("TARGETER_API_SECRET", EnvValue::Secret),
    ];

    fn from_env() -> Result<Self::Credentials, Error> {
        targeter::Credentials::from_env()
    }

    fn credentials(secret: &str) -> Self::Credentials {
        targeter::Credentials::new(API_KEY, secret)
    }

    fn debug_parts(credentials: Self::Credentials, base: &Url) -> String {
        crate::bearer::debug_parts::<Self>(credentials, base)
    }

    async fn assert_sent(credentials: Self::Credentials, secret: &str) {
        crate::bearer::assert_sent::<Self>(credentials, secret).await;
    }
}

impl Bearer for Targeter {
    type Source = targeter::Source;
    const TOKEN_PATH: &'static str = "/api/auth/token";
    const SHAPE: Shape = Shape::Json;
    const SUCCESS_CONTENT_TYPE: &'static str = "application/json";
    const API_METHOD: &'static str = "POST";
    const API_PATH: &'static str = "/api/campaign";
    const CREDENTIAL_MESSAGE: &'static str = "Invalid API credentials";
    /// `{"error": "..."}` is a message, not a code.
    const CREDENTIAL_CODE: Option<&'static str> = None;
    const SERVER_MESSAGE: &'static str = "Internal server error";

    fn api_body() -> Option<Value> {
        Some(json!({ "name": "spring" }))
    }

    fn source(credentials: Self::Credentials, base: &Url) -> Self::Source {
        targeter::Source::with_base_url(credentials, base)
    }

    fn auth(credentials: Self::Credentials, base: &Url) -> AuthMiddleware<Self::Source> {
        targeter::Auth::with_base_url(credentials, base)
    }

    fn with_http_client(source: Self::Source, client: reqwest::Client) -> Self::Source {
        source.http_client(client)
    }

    fn allow_insecure_http(source: Self::Source) -> Self::Source {
        source.allow_insecure_http()
    }

    fn token_url(source: &Self::Source) -> &Url {
        source.token_url()
    }

    fn token_request(when: When, secret: &str) -> When {
        when.method("POST")
            .path(Self::TOKEN_PATH)
            .header("content-type", "application/json")
            .json_body(json!({ "api_key": API_KEY, "api_secret": secret }))
    }

    fn success_body(token: &str) -> String {
        Value::Object(Self::success_json(token)).to_string()
    }

    fn credential_error(message: &str) -> Answer {
        Answer::json(401, json!({ "error": message }))
    }

    fn server_error(message: &str) -> Answer {
        Answer::json(500, json!({ "error": message }))
    }
}

impl JsonBearer for Targeter {
    const TOKEN_FIELD: &'static str = "access_token";

    fn success_json(token: &str) -> Map<String, Value> {
        let body = json!({ "access_token": token, "token_type": "Bearer", "expires_in": 3600 });
        body.as_object().unwrap().clone()
    }
}

impl Expiring for Targeter {
    const LIFETIME_FIELD: &'static str = "expires_in";
}

impl Production for Targeter {
    const DOCUMENTED_HOST: &'static str = "https://storhaug.targeter.tech";
    const DOCUMENTED_TOKEN_URL: &'static str = "https://storhaug.targeter.tech/api/auth/token";
    const BASE_URL: &'static str = targeter::BASE_URL;

    fn source_new(credentials: Self::Credentials) -> Self::Source {
        targeter::Source::new(credentials)
    }

    fn auth_new(credentials: Self::Credentials) -> AuthMiddleware<Self::Source> {
        targeter::Auth::new(credentials)
    }
}

partner_rows!(Targeter);
bearer_rows!(Targeter);
json_rows!(Targeter);
expiring_rows!(Targeter);
production_rows!(Targeter);
