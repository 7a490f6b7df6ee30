//! AdGem: JSON `{adgem_pub_id, adgem_app_id, client_id, client_secret}` (the ids JSON
//! integers) to `/v1/apps/tokens`, an OAuth-style answer, errors `{error, error_description}`.

use httpmock::When;
use reqwest_partner_auth::{adgem, AuthMiddleware, Error};
use serde_json::{json, Map, Value};
use url::Url;

use crate::bearer::{Answer, Bearer, Expiring, JsonBearer, Production, Shape};
use crate::env::ParsedEnv;
use crate::harness::{EnvValue, Partner};

const PUB_ID: i64 = 12345;
const APP_ID: i64 = 678;
const CLIENT_ID: &str = "your-client-id";
/// The seed's GraphQL offers query.
const OFFERS_QUERY: &str = "{ offers(player_id: \"user123\") { id name total_payout_usd } }";

pub(crate) struct AdGem;

impl Partner for AdGem {
    const NAME: &'static str = "adgem";
    type Credentials = adgem::Credentials;
    const ENV: &'static [(&'static str, EnvValue)] = &[
        ("ADGEM_PUB_ID", EnvValue::Public("12345")),
        ("ADGEM_APP_ID", EnvValue::Public("678")),
        ("ADGEM_CLIENT_ID", EnvValue::Public(CLIENT_ID)),
        ("ADGEM_CLIENT_SECRET", EnvValue::Secret),
    ];

    fn from_env() -> Result<Self::Credentials, Error> {
        adgem::Credentials::from_env()
    }

    fn credentials(secret: &str) -> Self::Credentials {
        adgem::Credentials::new(PUB_ID, APP_ID, CLIENT_ID, secret)
    }

    fn debug_parts(credentials: Self::Credentials, base: &Url) -> String {
        crate::bearer::debug_parts::<Self>(credentials, base)
    }

    async fn assert_sent(credentials: Self::Credentials, secret: &str) {
        crate::bearer::assert_sent::<Self>(credentials, secret).await;
    }
}

impl ParsedEnv for AdGem {
    /// "adgem_pub_id | integer", "adgem_app_id | integer".
    const INVALID: &'static [(&'static str, &'static str, &'static str)] = &[
        ("ADGEM_PUB_ID", "pub-7", "an integer"),
        ("ADGEM_APP_ID", "12.5", "an integer"),
    ];
}

impl Bearer for AdGem {
    type Source = adgem::Source;
    const TOKEN_PATH: &'static str = "/v1/apps/tokens";
    const SHAPE: Shape = Shape::Json;
    const SUCCESS_CONTENT_TYPE: &'static str = "application/json";
    const API_METHOD: &'static str = "POST";
    const API_PATH: &'static str = "/v1/offers";
    const CREDENTIAL_MESSAGE: &'static str = "Invalid client credentials";
    const CREDENTIAL_CODE: Option<&'static str> = Some("invalid_client");
    const SERVER_MESSAGE: &'static str = "An unexpected error occurred";

    fn api_body() -> Option<Value> {
        Some(json!({ "query": OFFERS_QUERY }))
    }

    fn source(credentials: Self::Credentials, base: &Url) -> Self::Source {
        adgem::Source::with_base_url(credentials, base)
    }

    fn auth(credentials: Self::Credentials, base: &Url) -> AuthMiddleware<Self::Source> {
        adgem::Auth::with_base_url(credentials, base)
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
            .json_body(json!({
                "adgem_pub_id": PUB_ID,
                "adgem_app_id": APP_ID,
                "client_id": CLIENT_ID,
                "client_secret": secret,
            }))
    }

    fn success_body(token: &str) -> String {
        Value::Object(Self::success_json(token)).to_string()
    }

    fn credential_error(message: &str) -> Answer {
        let body = json!({ "error": "invalid_client", "error_description": message });
        Answer::json(401, body)
    }

    fn server_error(message: &str) -> Answer {
        let body = json!({ "error": "server_error", "error_description": message });
        Answer::json(500, body)
    }
}

impl JsonBearer for AdGem {
    const TOKEN_FIELD: &'static str = "access_token";

    fn success_json(token: &str) -> Map<String, Value> {
        let body = json!({ "access_token": token, "token_type": "Bearer", "expires_in": 3600 });
        body.as_object().unwrap().clone()
    }
}

impl Expiring for AdGem {
    const LIFETIME_FIELD: &'static str = "expires_in";
}

impl Production for AdGem {
    const DOCUMENTED_HOST: &'static str = "https://targeted-api.adgem.com";
    const DOCUMENTED_TOKEN_URL: &'static str = "https://targeted-api.adgem.com/v1/apps/tokens";
    const BASE_URL: &'static str = adgem::BASE_URL;

    fn source_new(credentials: Self::Credentials) -> Self::Source {
        adgem::Source::new(credentials)
    }

    fn auth_new(credentials: Self::Credentials) -> AuthMiddleware<Self::Source> {
        adgem::Auth::new(credentials)
    }
}

partner_rows!(AdGem);
bearer_rows!(AdGem);
json_rows!(AdGem);
expiring_rows!(AdGem);
production_rows!(AdGem);
invalid_env_rows!(AdGem);
