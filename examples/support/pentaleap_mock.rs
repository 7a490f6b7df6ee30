//! A local stand-in for Pentaleap's Auth0 tenant and campaign API, mirroring the seed:
//! `/authorize` redirects back with `code` and `state`; `/oauth/token` takes
//! `grant_type=authorization_code` (checking the PKCE verifier) and `grant_type=refresh_token`
//! (rotating: each refresh token works once, and a reused one revokes every token);
//! `/external/v2/publishers` wants `Authorization: Bearer <access token>`.
//!
//! Shared by the `pentaleap_login` and `pentaleap_campaigns` examples.
#![allow(dead_code, unreachable_pub)]

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use httpmock::prelude::*;
use httpmock::HttpMockResponse;
use sha2::{Digest, Sha256};

/// What the mock remembers.
#[derive(Default)]
struct State {
    /// code -> PKCE challenge
    codes: HashMap<String, String>,
    /// refresh tokens already used
    used: HashSet<String>,
    /// live access tokens
    access: HashSet<String>,
    revoked: bool,
}

/// A running mock partner and its counters.
pub struct MockPentaleap {
    pub server: MockServer,
    pub refreshes: Arc<AtomicUsize>,
    state: Arc<Mutex<State>>,
}

impl MockPentaleap {
    /// Revokes every access token (the API answers 401 until the client refreshes); refresh
    /// tokens stay valid.
    pub fn revoke_access_tokens(&self) {
        self.state.lock().unwrap().access.clear();
    }
}

fn form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn json(status: u16, body: serde_json::Value) -> HttpMockResponse {
    HttpMockResponse::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.to_string())
        .build()
}

fn oauth_error(code: &str, description: &str) -> HttpMockResponse {
    json(
        400,
        serde_json::json!({ "error": code, "error_description": description }),
    )
}

pub async fn start() -> MockPentaleap {
    let server = MockServer::start_async().await;
    let state = Arc::new(Mutex::new(State::default()));
    let counter = Arc::new(AtomicUsize::new(0));
    let refreshes = Arc::new(AtomicUsize::new(0));

    let st = Arc::clone(&state);
    let n = Arc::clone(&counter);
    server
        .mock_async(move |when, then| {
            when.method(GET).path("/authorize");
            then.respond_with(move |req| {
                let q: HashMap<String, String> = req.query_params_map();
                let (Some(redirect), Some(challenge)) =
                    (q.get("redirect_uri"), q.get("code_challenge"))
                else {
                    return oauth_error(
                        "invalid_request",
                        "redirect_uri and code_challenge are required",
                    );
                };
                let code = format!("mock-code-{}", n.fetch_add(1, Ordering::SeqCst));
                st.lock()
                    .unwrap()
                    .codes
                    .insert(code.clone(), challenge.clone());
                let mut location = url::Url::parse(redirect).unwrap();
                location
                    .query_pairs_mut()
                    .append_pair("code", &code)
                    .append_pair("state", q.get("state").map_or("", String::as_str));
                HttpMockResponse::builder()
                    .status(302)
                    .header("location", location.as_str())
                    .build()
            });
        })
        .await;

    let st = Arc::clone(&state);
    let n = Arc::clone(&counter);
    let r = Arc::clone(&refreshes);
    server
        .mock_async(move |when, then| {
            when.method(POST)
                .path("/oauth/token")
                .header("content-type", "application/x-www-form-urlencoded");
            then.respond_with(move |req| {
                let f = form(req.body_ref());
                let mut s = st.lock().unwrap();
                match f.get("grant_type").map(String::as_str) {
                    Some("authorization_code") => {
                        let Some(challenge) = f.get("code").and_then(|c| s.codes.remove(c)) else {
                            return oauth_error("invalid_grant", "unknown or used code");
                        };
                        let verifier = f.get("code_verifier").cloned().unwrap_or_default();
                        let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
                            .encode(Sha256::digest(verifier.as_bytes()));
                        if computed != challenge {
                            return oauth_error("invalid_grant", "PKCE verification failed");
                        }
                        s.revoked = false;
                    }
                    Some("refresh_token") => {
                        let rt = f.get("refresh_token").cloned().unwrap_or_default();
                        if s.revoked || !rt.starts_with("mock-rt-") || !s.used.insert(rt) {
                            // Auth0: a reused refresh token invalidates every token.
                            s.revoked = true;
                            s.access.clear();
                            return oauth_error(
                                "invalid_grant",
                                "Unknown or invalid refresh token.",
                            );
                        }
                        r.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => return oauth_error("unsupported_grant_type", "grant type not supported"),
                }
                let i = n.fetch_add(1, Ordering::SeqCst);
                let access = format!("mock-at-{i}");
                s.access.insert(access.clone());
                json(
                    200,
                    serde_json::json!({
                        "access_token": access,
                        "refresh_token": format!("mock-rt-{i}-{}", std::process::id()),
                        "token_type": "Bearer",
                        "expires_in": 86400,
                        "scope": "offline_access read:publishers read:campaigns",
                    }),
                )
            });
        })
        .await;

    let st = Arc::clone(&state);
    server
        .mock_async(move |when, then| {
            when.method(GET).path("/external/v2/publishers");
            then.respond_with(move |req| {
                let auth = req
                    .headers()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                let ok = auth
                    .strip_prefix("Bearer ")
                    .is_some_and(|t| st.lock().unwrap().access.contains(t));
                if ok {
                    json(
                        200,
                        serde_json::json!([{ "id": 1001, "name": "Demo Retail" }]),
                    )
                } else {
                    json(401, serde_json::json!({ "message": "Unauthorized" }))
                }
            });
        })
        .await;

    MockPentaleap {
        server,
        refreshes,
        state,
    }
}
