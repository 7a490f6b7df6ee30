//! Where the token goes: only to the base URL's origin; the production constructors target
//! the documented token URL; plain http to a named host only with the source's one switch.

use httpmock::MockServer;
use reqwest_partner_auth::clock::ManualClock;
use reqwest_partner_auth::{AuthMiddleware, Error, TokenSource};
use url::Url;

#[cfg(any(feature = "targeter", feature = "adgem"))]
use crate::bearer::Production;
use crate::bearer::{api, api_url, base, call_api, cx, failing_api, numbered_tokens, Bearer};
use crate::common;
use crate::harness::SECRET;

/// A non-loopback name the test client resolves to the mock.
const HOST: &str = "partner.test";

/// `Auth::with_base_url(credentials, &base)`: the token endpoint is `<base><token path>`, a
/// request for the base's origin carries the token, and a request to another (local) origin
/// goes out without `Authorization` and costs no fetch, before and after a token is held.
pub(crate) async fn with_base_url_sends_the_token_only_to_the_base_origin<P: Bearer>() {
    let name = P::NAME;
    let home = MockServer::start_async().await;
    let other = MockServer::start_async().await;
    let token = numbered_tokens::<P>(&home, SECRET).await;
    let home_api = api::<P>(&home, &[]).await;
    let other_api = api::<P>(&other, &[]).await;
    let source = P::source(P::credentials(SECRET), &base(&home));
    let expected = base(&home)
        .join(P::TOKEN_PATH.trim_start_matches('/'))
        .unwrap();
    assert_eq!(P::token_url(&source), &expected, "{name}");
    let client = common::client(P::auth(P::credentials(SECRET), &base(&home)));

    let seen = call_api::<P>(&client, &api_url::<P>(&other)).await;
    assert_eq!(
        seen,
        (200, String::new()),
        "{name}: no Authorization elsewhere"
    );
    assert_eq!(
        token.calls_async().await,
        0,
        "{name}: no fetch for another origin"
    );

    let seen = call_api::<P>(&client, &api_url::<P>(&home)).await;
    assert_eq!(seen, (200, "Bearer tok-1".to_owned()), "{name}");

    let seen = call_api::<P>(&client, &api_url::<P>(&other)).await;
    assert_eq!(
        seen,
        (200, String::new()),
        "{name}: not with a token held either"
    );
    assert_eq!(token.calls_async().await, 1, "{name}");
    assert_eq!(home_api.calls_async().await, 1, "{name}");
    assert_eq!(other_api.calls_async().await, 2, "{name}");
}

/// `Source::new` and `Auth::new` target the documented token URL on the production host, and
/// the token goes to that origin; the crate's `BASE_URL` is the documented host.
#[cfg(any(feature = "targeter", feature = "adgem"))]
pub(crate) fn production_constructors_target_the_documented_token_url<P: Production>() {
    let name = P::NAME;
    assert_eq!(P::BASE_URL, P::DOCUMENTED_HOST, "{name}");
    let source = P::source_new(P::credentials(SECRET));
    assert_eq!(
        P::token_url(&source).as_str(),
        P::DOCUMENTED_TOKEN_URL,
        "{name}"
    );
    let origins: Vec<String> = source
        .api_origins()
        .iter()
        .map(|u| u.origin().ascii_serialization())
        .collect();
    assert_eq!(origins, [P::DOCUMENTED_HOST], "{name}");

    let auth = P::auth_new(P::credentials(SECRET));
    let layer_source = auth.cache().source();
    assert_eq!(
        P::token_url(layer_source).as_str(),
        P::DOCUMENTED_TOKEN_URL,
        "{name}"
    );
}

/// A layer built with `Auth::new` is scoped to the production host: a request to another
/// origin (the mock) goes out without `Authorization` and costs no token fetch.
#[cfg(any(feature = "targeter", feature = "adgem"))]
pub(crate) async fn production_layer_leaves_other_origins_alone<P: Production>() {
    let name = P::NAME;
    let server = MockServer::start_async().await;
    let api = api::<P>(&server, &[]).await;
    let mw = P::auth_new(P::credentials(SECRET));
    let cache = mw.cache().clone();

    let seen = call_api::<P>(&common::client(mw), &api_url::<P>(&server)).await;

    assert_eq!(
        seen,
        (200, String::new()),
        "{name}: no Authorization header"
    );
    assert_eq!(api.calls_async().await, 1, "{name}");
    assert!(
        cache.generation().is_none(),
        "{name}: no token was fetched: {cache:?}"
    );
}

/// The base URL `http://partner.test:<port>/` of `server`, and a client that resolves
/// `partner.test` to it.
fn named_base(server: &MockServer) -> (Url, reqwest::Client) {
    let base = Url::parse(&format!("http://{HOST}:{}/", server.port())).unwrap();
    (base, common::resolving_http_client(HOST, server))
}

/// Without `allow_insecure_http()`, plain http to a named host is refused on both halves:
/// the source's own fetch and the API request through the layer fail with
/// `Error::InsecureTransport` naming the origin, and the mock sees nothing.
pub(crate) async fn plain_http_to_a_named_host_is_refused_without_the_switch<P: Bearer>() {
    let name = P::NAME;
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_tokens::<P>(&server, SECRET).await;
    let api = api::<P>(&server, &[]).await;
    let (base, http) = named_base(&server);
    let origin = format!("http://{HOST}:{}", server.port());
    let source = P::with_http_client(P::source(P::credentials(SECRET), &base), http.clone());
    assert!(!source.allows_insecure_http(), "{name}");

    match source.fetch(&cx()).await {
        Err(Error::InsecureTransport { origin: got }) => assert_eq!(got, origin, "{name}"),
        other => panic!("{name}: expected InsecureTransport, got {other:?}"),
    }

    let layer = common::on_clock(AuthMiddleware::builder(source), &clock);
    let client = common::client_with(http, layer);
    let url = base.join(P::API_PATH.trim_start_matches('/')).unwrap();
    match failing_api::<P>(&client, url.as_str()).await {
        Error::InsecureTransport { origin: got } => assert_eq!(got, origin, "{name}"),
        other => panic!("{name}: expected InsecureTransport, got {other:?}"),
    }
    assert_eq!(token.calls_async().await, 0, "{name}");
    assert_eq!(api.calls_async().await, 0, "{name}");
}

/// `Source::allow_insecure_http()` is the one switch: with it, the source fetches over plain
/// http from the named host, and a layer over it sends the token to the API there.
pub(crate) async fn allow_insecure_http_lets_the_token_endpoint_and_the_api_over_http<P: Bearer>() {
    let name = P::NAME;
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_tokens::<P>(&server, SECRET).await;
    let api = api::<P>(&server, &[]).await;
    let (base, http) = named_base(&server);
    let source = P::source(P::credentials(SECRET), &base);
    let source = P::allow_insecure_http(P::with_http_client(source, http.clone()));
    assert!(source.allows_insecure_http(), "{name}");

    source
        .fetch(&cx())
        .await
        .unwrap_or_else(|err| panic!("{name}: the token endpoint over http: {err:?}"));
    assert_eq!(token.calls_async().await, 1, "{name}");

    let layer = common::on_clock(AuthMiddleware::builder(source), &clock);
    let client = common::client_with(http, layer);
    let url = base.join(P::API_PATH.trim_start_matches('/')).unwrap();
    let seen = call_api::<P>(&client, url.as_str()).await;
    assert_eq!(seen, (200, "Bearer tok-2".to_owned()), "{name}");
    assert_eq!(token.calls_async().await, 2, "{name}");
    assert_eq!(api.calls_async().await, 1, "{name}");
}
