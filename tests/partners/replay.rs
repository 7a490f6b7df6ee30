//! A token the API rejects is replaced and the request replayed, once; a token endpoint that
//! fails for a moment is retried until it answers.

use httpmock::MockServer;
use reqwest_partner_auth::clock::ManualClock;

use crate::bearer::{
    api, api_url, call_api, layer, numbered_tokens, success, token_endpoint, Bearer,
};
use crate::common;
use crate::harness::SECRET;

/// The API rejects `tok-1` with a 401: the layer fetches `tok-2` and replays the request once
/// (its body intact); the caller sees the 200, and `tok-2` stays in use.
pub(crate) async fn api_401_refreshes_the_token_and_replays_once<P: Bearer>() {
    let name = P::NAME;
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_tokens::<P>(&server, SECRET).await;
    let api = api::<P>(&server, &["tok-1"]).await;
    let client = common::client(layer::<P>(&server, &clock, SECRET));
    let url = api_url::<P>(&server);

    let (status, seen) = call_api::<P>(&client, &url).await;
    assert_eq!((status, seen.as_str()), (200, "Bearer tok-2"), "{name}");
    assert_eq!(token.calls_async().await, 2, "{name}");
    assert_eq!(
        api.calls_async().await,
        2,
        "{name}: the replay matched the API"
    );

    let (status, seen) = call_api::<P>(&client, &url).await;
    assert_eq!((status, seen.as_str()), (200, "Bearer tok-2"), "{name}");
    assert_eq!(
        token.calls_async().await,
        2,
        "{name}: the new token stays in use"
    );
    assert_eq!(api.calls_async().await, 3, "{name}");
}

/// When the new token is rejected too, that 401 goes back to the caller: one replay, never
/// more.
pub(crate) async fn api_401_after_the_replay_is_returned_as_is<P: Bearer>() {
    let name = P::NAME;
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_tokens::<P>(&server, SECRET).await;
    let api = api::<P>(&server, &["tok-1", "tok-2", "tok-3"]).await;
    let client = common::client(layer::<P>(&server, &clock, SECRET));

    let (status, _) = call_api::<P>(&client, &api_url::<P>(&server)).await;

    assert_eq!(status, 401, "{name}");
    assert_eq!(token.calls_async().await, 2, "{name}");
    assert_eq!(api.calls_async().await, 2, "{name}");
}

/// A server error followed by a success is invisible to the caller: two fetches (the second
/// after a backoff), one API call with the second answer's token.
pub(crate) async fn a_server_error_then_success_recovers<P: Bearer>() {
    let name = P::NAME;
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let failure = P::server_error(P::SERVER_MESSAGE);
    let token = token_endpoint::<P>(&server, SECRET, move |n| match n {
        1 => failure.response(),
        _ => success::<P>("tok-ok"),
    })
    .await;
    let api = api::<P>(&server, &[]).await;
    let client = common::client(layer::<P>(&server, &clock, SECRET));

    let (status, seen) = call_api::<P>(&client, &api_url::<P>(&server)).await;

    assert_eq!((status, seen.as_str()), (200, "Bearer tok-ok"), "{name}");
    assert_eq!(token.calls_async().await, 2, "{name}");
    assert!(
        clock.slept() > std::time::Duration::ZERO,
        "{name}: backed off"
    );
    assert_eq!(api.calls_async().await, 1, "{name}");
}
