//! The channel manager: `username` and `password` as a form to `/getToken`, a `text/plain`
//! token, "Channel manager not found" (a server error) for an unknown user.

use httpmock::When;
use reqwest_partner_auth::{channel_manager, AuthMiddleware, Error};
use serde_json::json;
use url::Url;

use crate::bearer::{Answer, Bearer, Shape};
use crate::harness::{EnvValue, Partner};

const USER: &str = "channel_user";
const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

pub(crate) struct ChannelManager;

impl Partner for ChannelManager {
    const NAME: &'static str = "channel manager";
    type Credentials = channel_manager::Credentials;
    const ENV: &'static [(&'static str, EnvValue)] = &[
        ("CHANNEL_MANAGER_USERNAME", EnvValue::Public(USER)),
        ("CHANNEL_MANAGER_PASSWORD", EnvValue::Secret),
    ];

    fn from_env() -> Result<Self::Credentials, Error> {
        channel_manager::Credentials::from_env()
    }

    fn credentials(secret: &str) -> Self::Credentials {
        channel_manager::Credentials::new(USER, secret)
    }

    fn debug_parts(credentials: Self::Credentials, base: &Url) -> String {
        crate::bearer::debug_parts::<Self>(credentials, base)
    }

    async fn assert_sent(credentials: Self::Credentials, secret: &str) {
        crate::bearer::assert_sent::<Self>(credentials, secret).await;
    }
}

impl Bearer for ChannelManager {
    type Source = channel_manager::Source;
    const TOKEN_PATH: &'static str = "/getToken";
    const SHAPE: Shape = Shape::PlainText;
    /// What a Spring controller sends with `text/plain`.
    const SUCCESS_CONTENT_TYPE: &'static str = "text/plain;charset=UTF-8";
    /// The connectivity call the layer authenticates.
    const API_METHOD: &'static str = "GET";
    const API_PATH: &'static str = "/properties";
    const CREDENTIAL_MESSAGE: &'static str = channel_manager::NOT_FOUND;
    /// A Spring error page's `error` is the reason phrase, not a code.
    const CREDENTIAL_CODE: Option<&'static str> = None;
    const SERVER_MESSAGE: &'static str = "boom";

    fn source(credentials: Self::Credentials, base: &Url) -> Self::Source {
        channel_manager::Source::with_base_url(credentials, base)
    }

    fn auth(credentials: Self::Credentials, base: &Url) -> AuthMiddleware<Self::Source> {
        channel_manager::Auth::with_base_url(credentials, base)
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

    /// The credentials form-encoded in the body, no query string, no `Authorization`
    /// ("Authentication: Not required for this endpoint").
    fn token_request(when: When, secret: &str) -> When {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("username", USER)
            .append_pair("password", secret)
            .finish();
        when.method("POST")
            .path(Self::TOKEN_PATH)
            .header("content-type", FORM_CONTENT_TYPE)
            .header_missing("authorization")
            .is_true(|req: &httpmock::HttpMockRequest| req.uri().query().is_none())
            .body(body)
    }

    fn success_body(token: &str) -> String {
        token.to_owned()
    }

    /// An unknown user, as Spring Boot renders the uncaught exception: a 500 whose
    /// `message` holds the text.
    fn credential_error(message: &str) -> Answer {
        Answer::json(500, spring_error(message))
    }

    fn server_error(message: &str) -> Answer {
        Answer::json(500, spring_error(message))
    }
}

/// Spring Boot's JSON error page for an uncaught exception with `message`.
fn spring_error(message: &str) -> serde_json::Value {
    json!({
        "timestamp": "2024-01-01T00:00:00.000+00:00",
        "status": 500,
        "error": "Internal Server Error",
        "message": message,
        "path": "/getToken",
    })
}

partner_rows!(ChannelManager);
bearer_rows!(ChannelManager);
