//! Pentaleap's Auth0 tenant and campaign API, as Pentaleap's API-authentication contract
//! describes the access-token flow.
//!
//! - `GET /authorize?audience&response_type=code&client_id&redirect_uri&scope&state` (with a
//!   PKCE `code_challenge`, `code_challenge_method=S256`) logs the user in at once and
//!   redirects to `<redirect_uri>?code=<code>&state=<state>`.
//! - `POST /oauth/token` (`application/x-www-form-urlencoded`):
//!   `grant_type=authorization_code` with `client_id`, `code`, `redirect_uri` (the one of the
//!   authorize request) and the PKCE `code_verifier`; `grant_type=refresh_token` with
//!   `client_id` and `refresh_token`. Both answer `access_token`, `expires_in` and, when the
//!   login asked for `offline_access`, a new `refresh_token`. Each refresh token works once: a
//!   refresh token used twice invalidates every refresh and access token at once, and the
//!   whole login has to be done again. Errors are OAuth errors (`400 {"error",
//!   "error_description"}`, `invalid_grant` for a bad code or refresh token).
//! - `GET /external/v2/publishers` wants `Authorization: Bearer <access token>`, live: issued
//!   here, not expired by the partner's clock, not revoked.
//!
//! Knobs: the access-token lifetime ([`Auth0::set_token_lifetime`], 24 hours to start with)
//! and [`Auth0::revoke_access_tokens`]; counts of token-endpoint hits, code exchanges,
//! refreshes, API hits and 401s.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use httpmock::{HttpMockRequest, HttpMockResponse, MockServer};
use reqwest_partner_auth::Clock;
use serde_json::json;
use sha2::{Digest, Sha256};
use url::Url;

use super::{form, has_content_type, json};

/// The client id the tenant knows.
pub(crate) const CLIENT_ID: &str = "mock-client";
/// The audience identifier of the campaign API.
pub(crate) const AUDIENCE: &str = "https://api.pentaleap.example";
pub(crate) const PUBLISHERS_PATH: &str = "/external/v2/publishers";

/// A code the authorize endpoint handed out, until it is exchanged.
struct Code {
    challenge: String,
    redirect_uri: String,
    offline: bool,
}

#[derive(Default)]
struct State {
    codes: HashMap<String, Code>,
    /// refresh token -> used already
    refresh_tokens: HashMap<String, bool>,
    /// access token -> when it expires
    access_tokens: HashMap<String, SystemTime>,
    serial: usize,
}

struct Tenant {
    clock: Box<dyn Clock>,
    /// Tells this tenant's tokens from those of an earlier run.
    nonce: String,
    lifetime: Mutex<Duration>,
    state: Mutex<State>,
    token_hits: AtomicUsize,
    exchanges: AtomicUsize,
    refreshes: AtomicUsize,
    api_hits: AtomicUsize,
    rejected: AtomicUsize,
}

/// A running mock tenant and API, its knobs and counters.
pub(crate) struct Auth0 {
    server: MockServer,
    tenant: Arc<Tenant>,
}

fn oauth_error(code: &str, description: &str) -> HttpMockResponse {
    json(
        400,
        json!({ "error": code, "error_description": description }),
    )
}

/// Starts the tenant and the API; access tokens expire by `clock`.
pub(crate) async fn start(clock: impl Clock) -> Auth0 {
    let server = MockServer::start_async().await;
    let nonce = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let tenant = Arc::new(Tenant {
        clock: Box::new(clock),
        nonce: format!("{:x}{:x}", std::process::id(), nonce),
        lifetime: Mutex::new(Duration::from_secs(86_400)),
        state: Mutex::default(),
        token_hits: AtomicUsize::new(0),
        exchanges: AtomicUsize::new(0),
        refreshes: AtomicUsize::new(0),
        api_hits: AtomicUsize::new(0),
        rejected: AtomicUsize::new(0),
    });

    let t = Arc::clone(&tenant);
    server
        .mock_async(|when, then| {
            when.method("GET").path("/authorize");
            then.respond_with(move |req| t.authorize(req));
        })
        .await;
    let t = Arc::clone(&tenant);
    server
        .mock_async(|when, then| {
            when.method("POST").path("/oauth/token");
            then.respond_with(move |req| {
                t.token_hits.fetch_add(1, Ordering::SeqCst);
                t.token(req)
            });
        })
        .await;
    let t = Arc::clone(&tenant);
    server
        .mock_async(|when, then| {
            when.method("GET").path(PUBLISHERS_PATH);
            then.respond_with(move |req| {
                t.api_hits.fetch_add(1, Ordering::SeqCst);
                t.publishers(req)
            });
        })
        .await;
    Auth0 { server, tenant }
}

impl Tenant {
    fn authorize(&self, req: &HttpMockRequest) -> HttpMockResponse {
        let q: HashMap<String, String> = req.query_params().into_iter().collect();
        let get = |name: &str| q.get(name).map(String::as_str);
        if get("client_id") != Some(CLIENT_ID) {
            return oauth_error("invalid_request", "Unknown client.");
        }
        if get("audience") != Some(AUDIENCE) {
            return oauth_error("access_denied", "Service not found.");
        }
        if get("response_type") != Some("code") {
            return oauth_error("unsupported_response_type", "Unsupported response type.");
        }
        let (Some(redirect), Some(challenge), Some("S256")) = (
            get("redirect_uri"),
            get("code_challenge"),
            get("code_challenge_method"),
        ) else {
            return oauth_error(
                "invalid_request",
                "redirect_uri and an S256 code_challenge are required",
            );
        };
        let Ok(mut location) = Url::parse(redirect) else {
            return oauth_error("invalid_request", "redirect_uri is not a URL");
        };
        let offline = get("scope").is_some_and(|s| s.split(' ').any(|s| s == "offline_access"));
        let code = {
            let mut s = self.state.lock().unwrap();
            s.serial += 1;
            let code = format!("mock-code-{}-{}", s.serial, self.nonce);
            s.codes.insert(
                code.clone(),
                Code {
                    challenge: challenge.to_owned(),
                    redirect_uri: redirect.to_owned(),
                    offline,
                },
            );
            code
        };
        {
            let mut pairs = location.query_pairs_mut();
            pairs.append_pair("code", &code);
            if let Some(state) = get("state") {
                pairs.append_pair("state", state);
            }
        }
        HttpMockResponse::builder()
            .status(302)
            .header("location", location.as_str())
            .build()
    }

    fn token(&self, req: &HttpMockRequest) -> HttpMockResponse {
        if !has_content_type(req, "application/x-www-form-urlencoded") {
            return oauth_error("invalid_request", "Unsupported content type.");
        }
        let f: HashMap<String, String> = form(req.body_ref()).into_iter().collect();
        let get = |name: &str| f.get(name).map(String::as_str);
        if get("client_id") != Some(CLIENT_ID) {
            return json(
                401,
                json!({ "error": "access_denied", "error_description": "Unauthorized" }),
            );
        }
        let mut s = self.state.lock().unwrap();
        let offline = match get("grant_type") {
            Some("authorization_code") => {
                let Some(code) = get("code").and_then(|c| s.codes.remove(c)) else {
                    return oauth_error("invalid_grant", "Invalid authorization code");
                };
                if get("redirect_uri") != Some(code.redirect_uri.as_str()) {
                    return oauth_error(
                        "invalid_grant",
                        "The redirect_uri MUST match the one of the authorization request.",
                    );
                }
                let verifier = get("code_verifier").unwrap_or_default();
                let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(Sha256::digest(verifier.as_bytes()));
                if computed != code.challenge {
                    return oauth_error("invalid_grant", "Failed to verify code verifier");
                }
                self.exchanges.fetch_add(1, Ordering::SeqCst);
                code.offline
            }
            Some("refresh_token") => {
                let presented = get("refresh_token").unwrap_or_default();
                match s.refresh_tokens.get_mut(presented) {
                    Some(used @ false) => *used = true,
                    Some(true) => {
                        // Used twice: every refresh and access token is invalidated at once.
                        s.refresh_tokens.values_mut().for_each(|used| *used = true);
                        s.access_tokens.clear();
                        return oauth_error("invalid_grant", "Unknown or invalid refresh token.");
                    }
                    None => {
                        return oauth_error("invalid_grant", "Unknown or invalid refresh token.")
                    }
                }
                self.refreshes.fetch_add(1, Ordering::SeqCst);
                true
            }
            _ => return oauth_error("unsupported_grant_type", "Unsupported grant type"),
        };
        s.serial += 1;
        let lifetime = *self.lifetime.lock().unwrap();
        let access = format!("mock-at-{}-{}", s.serial, self.nonce);
        s.access_tokens
            .insert(access.clone(), self.clock.system_now() + lifetime);
        let mut body = json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": lifetime.as_secs(),
            "scope": "offline_access read:publishers read:campaigns",
        });
        if offline {
            let refresh = format!("mock-rt-{}-{}", s.serial, self.nonce);
            s.refresh_tokens.insert(refresh.clone(), false);
            body["refresh_token"] = refresh.into();
        }
        json(200, body)
    }

    fn publishers(&self, req: &HttpMockRequest) -> HttpMockResponse {
        let auth = req.headers().get("authorization").cloned();
        let token = auth
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let live = token.is_some_and(|t| {
            let s = self.state.lock().unwrap();
            s.access_tokens
                .get(t)
                .is_some_and(|exp| self.clock.system_now() < *exp)
        });
        if live {
            json(200, json!([{ "id": 1001, "name": "Demo Retail" }]))
        } else {
            self.rejected.fetch_add(1, Ordering::SeqCst);
            json(401, json!({ "message": "Unauthorized" }))
        }
    }
}

impl Auth0 {
    /// The tenant's (and the API's) base URL.
    pub(crate) fn base_url(&self) -> Url {
        Url::parse(&self.server.base_url()).expect("the mock's base URL")
    }

    /// Requests to `/oauth/token` so far.
    pub(crate) fn token_hits(&self) -> usize {
        self.tenant.token_hits.load(Ordering::SeqCst)
    }

    /// Codes exchanged for tokens so far.
    pub(crate) fn code_exchanges(&self) -> usize {
        self.tenant.exchanges.load(Ordering::SeqCst)
    }

    /// Successful refreshes so far.
    pub(crate) fn refreshes(&self) -> usize {
        self.tenant.refreshes.load(Ordering::SeqCst)
    }

    /// Requests to the API so far.
    pub(crate) fn api_hits(&self) -> usize {
        self.tenant.api_hits.load(Ordering::SeqCst)
    }

    /// API requests answered `401`.
    pub(crate) fn rejected(&self) -> usize {
        self.tenant.rejected.load(Ordering::SeqCst)
    }

    /// Whether this tenant issued `refresh_token` and it still works (a login saved by an
    /// earlier run of a mock means nothing to this one).
    pub(crate) fn accepts_refresh_token(&self, refresh_token: &str) -> bool {
        let s = self.tenant.state.lock().unwrap();
        s.refresh_tokens.get(refresh_token) == Some(&false)
    }

    /// The lifetime of the access tokens issued from now on.
    pub(crate) fn set_token_lifetime(&self, lifetime: Duration) {
        *self.tenant.lifetime.lock().unwrap() = lifetime;
    }

    /// Revokes every access token (the API answers `401` until the client refreshes);
    /// refresh tokens stay valid.
    pub(crate) fn revoke_access_tokens(&self) {
        self.tenant.state.lock().unwrap().access_tokens.clear();
    }
}
