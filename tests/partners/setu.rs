//! Setu (Bridge): the form `grant_type=client_credentials&client_id&client_secret` to
//! `/auth/token`, a camelCase answer `{accessToken, refreshToken}` without a lifetime.

use httpmock::When;
use reqwest_partner_auth::{setu, AuthMiddleware, Error};
use serde_json::{json, Map, Value};
use url::Url;

use crate::bearer::{Answer, Bearer, JsonBearer, Shape};
use crate::harness::{EnvValue, Partner};

const CLIENT_ID: &str = "Your.Client.ID";
const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

pub(crate) struct Setu;

impl Partner for Setu {
    const NAME: &'static str = "setu";
    type Credentials = setu::Credentials;
    const ENV: &'static [(&'static str, EnvValue)] = &[
        ("SETU_CLIENT_ID", EnvValue::Public(CLIENT_ID)),
        ("SETU_CLIENT_SECRET", EnvValue::Secret),
    ];

    fn from_env() -> Result<Self::Credentials, Error> {
        setu::Credentials::from_env()
    }

    fn credentials(secret: &str) -> Self::Credentials {
        setu::Credentials::new(CLIENT_ID, secret)
    }

    fn debug_parts(credentials: Self::Credentials, base: &Url) -> String {
        crate::bearer::debug_parts::<Self>(credentials, base)
    }

    async fn assert_sent(credentials: Self::Credentials, secret: &str) {
        crate::bearer::assert_sent::<Self>(credentials, secret).await;
    }
}

impl Bearer for Setu {
    type Source = setu::Source;
    const TOKEN_PATH: &'static str = "/auth/token";
    const SHAPE: Shape = Shape::Json;
    const SUCCESS_CONTENT_TYPE: &'static str = "application/json";
    /// "the next API": any call to the Bridge origin.
    const API_METHOD: &'static str = "GET";
    const API_PATH: &'static str = "/v1/next-api";
    const CREDENTIAL_MESSAGE: &'static str = "Invalid client secret";
    const CREDENTIAL_CODE: Option<&'static str> = Some("unauthorized_client");
    const SERVER_MESSAGE: &'static str = "internal";

    fn source(credentials: Self::Credentials, base: &Url) -> Self::Source {
        setu::Source::with_base_url(credentials, base)
    }

    fn auth(credentials: Self::Credentials, base: &Url) -> AuthMiddleware<Self::Source> {
        setu::Auth::with_base_url(credentials, base)
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
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", CLIENT_ID)
            .append_pair("client_secret", secret)
            .finish();
        when.method("POST")
            .path(Self::TOKEN_PATH)
            .header("content-type", FORM_CONTENT_TYPE)
            .body(body)
    }

    fn success_body(token: &str) -> String {
        Value::Object(Self::success_json(token)).to_string()
    }

    /// A Keycloak-style 401.
    fn credential_error(message: &str) -> Answer {
        let body = json!({ "error": "unauthorized_client", "error_description": message });
        Answer::json(401, body)
    }

    fn server_error(message: &str) -> Answer {
        let body = json!({ "error": "server_error", "error_description": message });
        Answer::json(500, body)
    }
}

impl JsonBearer for Setu {
    const TOKEN_FIELD: &'static str = "accessToken";

    fn success_json(token: &str) -> Map<String, Value> {
        let body = json!({ "accessToken": token, "refreshToken": format!("rt-for-{token}") });
        body.as_object().unwrap().clone()
    }
}

partner_rows!(Setu);
bearer_rows!(Setu);
json_rows!(Setu);
