//! Property tests through the public API: the JWT `exp` reader, `Token::bearer` and the
//! `FileStore` format.
//!
//! * No string makes `jwt_expiry` or `Token::bearer` panic; a JWT carrying `exp = n` expires
//!   at `UNIX_EPOCH + n`.
//! * No bytes in a token file make `FileStore::load` panic: it returns the tokens or a typed
//!   corrupt-store error that never quotes the file.
//! * What `FileStore::save` writes, `FileStore::load` reads back (times at whole seconds).
//! * End to end, each partner's token source against a raw local server: any answer (status,
//!   content type, body) is a token or a typed error, and a credential the server echoes
//!   back, in any encoding, never reaches the error.
//!
//! Case counts are set explicitly and kept small so the suite stays fast in debug builds.
#![cfg(all(
    feature = "targeter",
    feature = "adgem",
    feature = "setu",
    feature = "channel-manager",
    feature = "oauth2",
    feature = "file-store"
))]

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[allow(dead_code)]
#[path = "faults/server.rs"]
mod server;

use base64::Engine as _;
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use reqwest_partner_auth::error::StoreErrorKind;
use reqwest_partner_auth::oauth2::{ClientCredentialsSource, TokenUrl};
use reqwest_partner_auth::store::{DeadLogin, FileStore, StoredTokens, TokenStore};
use reqwest_partner_auth::token::jwt_expiry;
use reqwest_partner_auth::{
    adgem, channel_manager, setu, targeter, Error, FetchContext, FetchReason, Token, TokenSource,
};
use url::Url;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Map, Value};
use server::{response, Answer, RawServer};

/// A token value that must never be quoted by an error about the file holding it.
const SENTINEL: &str = "SENTINEL-STORED-TOKEN-5c2e";

/// The last second of the year 9999: times up to here must round-trip.
const LATEST: u64 = 253_402_300_799;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // Failures are reported, not written next to the sources: known bad inputs are kept
        // as named tests instead.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A single-threaded runtime for the store's blocking-pool work.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

// -------------------------------------------------------------------------------------------
// JWT exp
// -------------------------------------------------------------------------------------------

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An unsigned JWT whose payload is `payload` (any bytes).
fn jwt_of(payload: &[u8]) -> String {
    format!("{}.{}.c2ln", b64(br#"{"alg":"none"}"#), b64(payload))
}

/// Any JSON value, nested a few levels, with numbers of every kind.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![Just("exp".to_owned()), "[a-z]{1,6}"],
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(config(512))]

    /// No string makes the `exp` reader panic, including ones shaped like JWTs.
    #[test]
    fn jwt_expiry_never_panics_on_any_string(
        s in prop_oneof![
            any::<String>(),
            "[A-Za-z0-9_=.-]{0,80}",
            ("[A-Za-z0-9_-]{0,20}", "[A-Za-z0-9_=-]{0,40}", "[A-Za-z0-9_.-]{0,20}")
                .prop_map(|(a, b, c)| format!("{a}.{b}.{c}")),
        ]
    ) {
        let _ = jwt_expiry(&s);
    }

    /// No payload (any JSON, any bytes) makes the `exp` reader panic; when it answers, the
    /// answer is the payload's own `exp` in whole seconds.
    #[test]
    fn jwt_expiry_never_panics_on_any_payload(
        payload in prop_oneof![
            json_value().prop_map(|v| v.to_string().into_bytes()),
            json_value().prop_map(|v| json!({ "exp": v }).to_string().into_bytes()),
            proptest::collection::vec(any::<u8>(), 0..64),
        ]
    ) {
        let token = jwt_of(&payload);
        if let Some(at) = jwt_expiry(&token) {
            let claims: Value = serde_json::from_slice(&payload).expect("an answer needs json");
            let exp = claims.get("exp").expect("an answer needs an exp");
            let secs = at.duration_since(UNIX_EPOCH).expect("after 1970").as_secs();
            let expected = exp.as_u64().or_else(|| exp.as_f64().map(|f| f as u64));
            prop_assert_eq!(Some(secs), expected);
        }
    }

    /// A JWT with `exp = n` (an integer, or n.5) expires at `UNIX_EPOCH + n`, whatever other
    /// claims it carries.
    #[test]
    fn jwt_with_exp_n_expires_at_epoch_plus_n(
        n in prop_oneof![0u64..=LATEST, 1_600_000_000u64..2_000_000_000],
        half in any::<bool>(),
        others in proptest::collection::btree_map("[a-df-z]{1,6}", json_value(), 0..4),
    ) {
        let mut claims: Map<String, Value> = others.into_iter().collect();
        let exp = if half { json!(n as f64 + 0.5) } else { json!(n) };
        claims.insert("exp".into(), exp);
        let token = jwt_of(Value::Object(claims).to_string().as_bytes());
        prop_assert_eq!(jwt_expiry(&token), Some(UNIX_EPOCH + Duration::from_secs(n)));
        // And a token built from it carries that expiry.
        let t = Token::bearer(&token).expect("a jwt is a legal token");
        prop_assert_eq!(t.expiry(), reqwest_partner_auth::token::Expiry::At(UNIX_EPOCH + Duration::from_secs(n)));
    }

    /// `Token::bearer` takes any string without panicking: either a typed malformed-token
    /// error, or a token whose header is exactly `Bearer <trimmed value>`, marked sensitive.
    #[test]
    fn bearer_takes_any_string(s in prop_oneof![any::<String>(), "[ -~]{0,60}", "[\\x00-\\x7f]{0,20}"]) {
        match Token::bearer(s.as_str()) {
            Ok(t) => {
                let trimmed = s.trim();
                prop_assert_eq!(t.secret().expose_secret(), trimmed);
                let header = format!("Bearer {trimmed}");
                prop_assert_eq!(t.header_value().as_bytes(), header.as_bytes());
                prop_assert!(t.header_value().is_sensitive());
                // Long values only: a short one may be a word of the Debug text itself.
                let debug = format!("{t:?}");
                prop_assert!(trimmed.len() < 12 || !debug.contains(trimmed), "{}", debug);
            }
            Err(e) => prop_assert!(matches!(e, Error::MalformedResponse(_)), "{:?}", e),
        }
    }
}

// -------------------------------------------------------------------------------------------
// FileStore
// -------------------------------------------------------------------------------------------

/// Writes `bytes` as the token file, mode `0600` as the store itself would create it.
fn write_token_file(path: &Path, bytes: &[u8]) {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).expect("the token file opens");
    file.write_all(bytes).expect("the token file is written");
}

/// Values a stored field may hold in a damaged or hand-edited file.
fn field_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => prop_oneof![
            any::<u64>().prop_map(Value::from),
            (u64::MAX / 2..=u64::MAX).prop_map(Value::from),
            Just(Value::from(9_223_372_036_854_775_808u64)),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
        ],
        1 => Just(Value::Null),
        1 => Just(Value::from(SENTINEL)),
        1 => json_value(),
    ]
}

/// A store file of the right overall shape: a valid entry with one to three of its fields
/// (or a field it does not know) replaced by anything.
fn damaged_store_file() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![4 => Just(Value::from(1)), 1 => json_value()],
        proptest::collection::vec(
            (
                proptest::sample::select(vec![
                    "access_token",
                    "access_expires_at",
                    "refresh_token",
                    "authorized_at",
                    "dead",
                    "extra",
                ]),
                field_value(),
            ),
            1..4,
        ),
    )
        .prop_map(|(version, changes)| {
            let mut entry = json!({
                "access_token": SENTINEL,
                "access_expires_at": null,
                "refresh_token": null,
                "authorized_at": 0,
            });
            for (field, value) in changes {
                entry[field] = value;
            }
            json!({ "version": version, "entries": { "k": entry } })
                .to_string()
                .into_bytes()
        })
}

/// File content, shown as escaped text when a case fails.
#[derive(Clone)]
struct Bytes(Vec<u8>);

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

/// Bytes of every kind a token file may end up holding.
fn any_store_bytes() -> impl Strategy<Value = Bytes> {
    let bytes = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        json_value().prop_map(|v| v.to_string().into_bytes()),
        damaged_store_file(),
        // A valid file cut short, or with one byte changed.
        (damaged_store_file(), any::<usize>(), any::<u8>()).prop_map(|(mut b, at, byte)| {
            let at = at % (b.len() + 1);
            if at < b.len() && byte % 2 == 0 {
                b[at] = byte;
                b
            } else {
                b.truncate(at);
                b
            }
        }),
    ];
    bytes.prop_map(Bytes)
}

/// Loads key `k` from a token file holding `bytes`: the tokens, or a typed corrupt-store
/// error that does not quote the file; never a panic.
fn load_is_ok_or_corrupt(
    rt: &tokio::runtime::Runtime,
    path: &Path,
    bytes: &[u8],
) -> Result<(), TestCaseError> {
    write_token_file(path, bytes);
    let store = FileStore::new(path);
    let result = rt.block_on(store.load("k"));
    match &result {
        Ok(_) => {}
        Err(Error::Store(e)) => {
            prop_assert_eq!(e.kind(), StoreErrorKind::Corrupt, "{:?}", e);
            let err = result.as_ref().unwrap_err();
            let shown = format!("{err} {err:?}");
            prop_assert!(
                !shown.contains(SENTINEL),
                "the error quotes the file: {}",
                shown
            );
        }
        Err(other) => prop_assert!(false, "not a store error: {:?}", other),
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    /// Any bytes in the token file: `load` returns the tokens or a typed corrupt-store
    /// error naming the file without quoting it, never a panic (a time too large for a
    /// `SystemTime` included).
    #[test]
    fn any_token_file_loads_or_is_corrupt(bytes in any_store_bytes()) {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("tokens.json");
        load_is_ok_or_corrupt(&runtime(), &path, &bytes.0)?;
    }
}

/// The timestamps that fit a u64 but not a `SystemTime` are a corrupt file, not a panic.
#[test]
fn out_of_range_times_are_corrupt_not_a_panic() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("tokens.json");
    for huge in ["9223372036854775808", "18446744073709551615"] {
        for field in ["authorized_at", "access_expires_at"] {
            let mut entry = json!({
                "access_token": SENTINEL,
                "access_expires_at": null,
                "refresh_token": null,
                "authorized_at": 0,
            });
            entry[field] = serde_json::from_str(huge).expect("a json number");
            let bytes = json!({ "version": 1, "entries": { "k": entry } }).to_string();
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                load_is_ok_or_corrupt(&rt, &path, bytes.as_bytes())
            }));
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(e)) => panic!("{field} = {huge}: {e}"),
                Err(_) => panic!("{field} = {huge}: FileStore::load panicked"),
            }
        }
    }
}

/// Times the format can hold: whole seconds from 1970 to the year 9999.
fn stored_time() -> impl Strategy<Value = SystemTime> {
    prop_oneof![0u64..=LATEST, 1_600_000_000u64..2_000_000_000]
        .prop_map(|s| UNIX_EPOCH + Duration::from_secs(s))
}

/// Any `StoredTokens` the format can hold (no dead-login mark), with or without a refresh
/// marked as sent.
fn stored_tokens() -> impl Strategy<Value = StoredTokens> {
    (
        proptest::option::of(any::<String>()),
        proptest::option::of(stored_time()),
        proptest::option::of(any::<String>()),
        stored_time(),
        proptest::option::of(stored_time()),
    )
        .prop_map(|(access, expires, refresh, authorized, started)| {
            let mut tokens = StoredTokens::new(
                access.map(SecretString::from),
                expires,
                refresh.map(SecretString::from),
                authorized,
            );
            tokens.refresh_started_at = started;
            tokens
        })
}

fn exposed(s: &Option<SecretString>) -> Option<String> {
    s.as_ref().map(|s| s.expose_secret().to_owned())
}

fn assert_same(loaded: &StoredTokens, saved: &StoredTokens) -> Result<(), TestCaseError> {
    prop_assert_eq!(exposed(&loaded.access_token), exposed(&saved.access_token));
    prop_assert_eq!(loaded.access_expires_at, saved.access_expires_at);
    prop_assert_eq!(
        exposed(&loaded.refresh_token),
        exposed(&saved.refresh_token)
    );
    prop_assert_eq!(loaded.authorized_at, saved.authorized_at);
    prop_assert_eq!(&loaded.dead, &saved.dead);
    prop_assert_eq!(loaded.refresh_started_at, saved.refresh_started_at);
    Ok(())
}

/// Saves every entry, then loads each back through a fresh store on the same file.
fn round_trip(entries: &[(String, StoredTokens)]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("tokens.json");
    let rt = runtime();
    rt.block_on(async {
        let store = FileStore::new(&path);
        for (key, tokens) in entries {
            store.save(key, tokens).await.expect("the tokens are saved");
        }
        let again = FileStore::new(&path);
        // Keys may repeat: the last save of a key wins.
        for (i, (key, _)) in entries.iter().enumerate() {
            let last = entries
                .iter()
                .rposition(|(k, _)| k == key)
                .expect("present");
            if i != last {
                continue;
            }
            let loaded = again.load(key).await.expect("the file loads");
            let loaded = loaded.expect("the entry is there");
            assert_same(&loaded, &entries[last].1)?;
        }
        prop_assert!(again
            .load("a key never saved")
            .await
            .expect("loads")
            .is_none());
        Ok(())
    })
}

proptest! {
    #![proptest_config(config(64))]

    /// What `save` writes `load` reads back: tokens of any text, times at whole seconds,
    /// several keys (any text) in one file.
    #[test]
    fn stored_tokens_round_trip(
        entries in proptest::collection::vec((any::<String>(), stored_tokens()), 1..4),
    ) {
        round_trip(&entries)?;
    }

    /// A dead-login mark (when, why) survives a save and a load, so a person can see what
    /// happened after a restart.
    #[test]
    fn dead_login_mark_round_trips(
        tokens in stored_tokens(),
        at in stored_time(),
        reason in any::<String>(),
    ) {
        let mut tokens = tokens;
        tokens.dead = Some(DeadLogin::new(at, reason));
        round_trip(&[("dead".to_owned(), tokens)])?;
    }
}

// -------------------------------------------------------------------------------------------
// Each partner's token source, end to end
// -------------------------------------------------------------------------------------------

/// The token sources of the crate, each configured as its partner's contract says.
#[derive(Debug, Clone, Copy)]
enum Partner {
    Targeter,
    AdGem,
    Setu,
    ChannelManager,
    OAuth2,
}

fn partner() -> impl Strategy<Value = Partner> {
    proptest::sample::select(vec![
        Partner::Targeter,
        Partner::AdGem,
        Partner::Setu,
        Partner::ChannelManager,
        Partner::OAuth2,
    ])
}

/// One fetch by `partner`'s source against `base`, with client id `id` and secret `secret`.
async fn fetch(partner: Partner, base: &Url, id: &str, secret: &str) -> Result<Token, Error> {
    let cx = FetchContext::new(FetchReason::Initial);
    match partner {
        Partner::Targeter => {
            let creds = targeter::Credentials::new(id, secret);
            targeter::Source::with_base_url(creds, base)
                .fetch(&cx)
                .await
        }
        Partner::AdGem => {
            let creds = adgem::Credentials::new(1, 2, id, secret);
            adgem::Source::with_base_url(creds, base).fetch(&cx).await
        }
        Partner::Setu => {
            setu::Source::with_base_url(setu::Credentials::new(id, secret), base)
                .fetch(&cx)
                .await
        }
        Partner::ChannelManager => {
            let creds = channel_manager::Credentials::new(id, secret);
            channel_manager::Source::with_base_url(creds, base)
                .fetch(&cx)
                .await
        }
        Partner::OAuth2 => {
            let url = base.join("/oauth/token").expect("a url");
            ClientCredentialsSource::new(TokenUrl::new(url), id, secret)
                .fetch(&cx)
                .await
        }
    }
}

/// Serves `answer` to every request and fetches once with `partner`'s source.
fn fetch_against(
    partner: Partner,
    answer: Vec<u8>,
    id: &str,
    secret: &str,
) -> Result<Token, Error> {
    runtime().block_on(async {
        let server = RawServer::start(move |_| Answer::Bytes(answer.clone())).await;
        let base = server.base();
        let fetched = fetch(partner, &base, id, secret);
        tokio::time::timeout(Duration::from_secs(20), fetched)
            .await
            .expect("the fetch hung")
    })
}

/// Statuses a token endpoint answers with (no 1xx: those are not final answers).
fn final_status() -> impl Strategy<Value = u16> {
    prop_oneof![
        proptest::sample::select(vec![
            200u16, 201, 204, 302, 307, 400, 401, 403, 404, 429, 500, 502, 503
        ]),
        200u16..600,
    ]
}

/// Content types a server may send (legal header characters).
fn any_content_type() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(vec![
            "application/json",
            "application/json; charset=utf-8",
            "text/plain",
            "text/html",
            "application/x-www-form-urlencoded",
            "",
        ])
        .prop_map(str::to_owned),
        "[!-~][ -~]{0,30}[!-~]",
    ]
}

/// Bodies of every kind: bytes, JSON, partner-shaped objects with odd values, text.
fn any_answer_body() -> impl Strategy<Value = Vec<u8>> {
    let fields = proptest::sample::select(vec![
        "access_token",
        "accessToken",
        "expires_in",
        "token_type",
        "refresh_token",
        "refreshToken",
        "error",
        "error_description",
        "message",
    ]);
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        json_value().prop_map(|v| v.to_string().into_bytes()),
        proptest::collection::btree_map(fields.prop_map(str::to_owned), json_value(), 0..5)
            .prop_map(|m| Value::Object(m.into_iter().collect())
                .to_string()
                .into_bytes()),
        "[ -~]{0,80}".prop_map(String::into_bytes),
    ]
}

/// The ways a server may echo a credential: raw, JSON-escaped (serde's and PHP's `\/`),
/// form-encoded, inside an echoed Basic header.
fn encodings(id: &str, secret: &str) -> Vec<String> {
    let json = serde_json::to_string(secret).expect("a string serialises");
    let json = json[1..json.len() - 1].to_owned();
    let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    vec![
        secret.to_owned(),
        json.clone(),
        json.replace('/', "\\/"),
        form,
        basic,
    ]
}

proptest! {
    #![proptest_config(config(48))]

    /// Any answer to any partner's token request is a token or a typed error, never a panic
    /// or a hang: a success status gives a token or `MalformedResponse`; any other status is
    /// never a token.
    #[test]
    fn any_token_endpoint_answer_is_a_token_or_a_typed_error(
        partner in partner(),
        status in final_status(),
        content_type in any_content_type(),
        body in any_answer_body(),
    ) {
        let answer = response(status, &content_type, &body);
        let result = fetch_against(partner, answer, "client-id", "client-secret-value");
        if (200..300).contains(&status) {
            prop_assert!(
                matches!(result, Ok(_) | Err(Error::MalformedResponse(_))),
                "{} to {:?}: {:?}", status, partner, result
            );
        } else {
            prop_assert!(
                matches!(
                    result,
                    Err(Error::InvalidCredentials { .. }
                        | Error::TokenEndpoint { .. }
                        | Error::OAuth { .. }
                        | Error::ReauthorizationRequired { .. })
                ),
                "{} to {:?}: {:?}", status, partner, result
            );
        }
    }

    /// A token endpoint that echoes the credential back in an error, in any encoding and
    /// any place (the body, a message field, the code field), never gets it into the error.
    #[test]
    fn echoed_credentials_never_reach_the_error(
        partner in partner(),
        status in proptest::sample::select(vec![400u16, 401, 403, 429, 500, 503]),
        secret in "[A-Za-z0-9/+&=% é!:]{10,30}",
        form in 0usize..5,
        place in 0usize..4,
        json in any::<bool>(),
    ) {
        let id = "client-id";
        let echoed = encodings(id, &secret)[form].clone();
        let body = match place {
            0 => format!("bad credentials {echoed} sent"),
            1 => format!(r#"{{"error":"invalid_client","error_description":"bad {echoed}"}}"#),
            2 => format!(r#"{{"status":500,"error":"Internal Server Error","message":"bad {echoed}"}}"#),
            _ => format!(r#"{{"error":"{echoed}"}}"#),
        };
        let content_type = if json { "application/json" } else { "text/plain" };
        let err = fetch_against(partner, response(status, content_type, body), id, &secret)
            .expect_err("an error status is never a token");
        let (shown, debug) = (format!("{err}"), format!("{err:?}"));
        for form in encodings(id, &secret) {
            prop_assert!(!shown.contains(&form), "{:?}: {} in Display: {}", partner, form, shown);
            // Debug shows strings escaped: look for the form as Debug would show it.
            let escaped = format!("{form:?}");
            let escaped = &escaped[1..escaped.len() - 1];
            prop_assert!(!debug.contains(escaped), "{:?}: {} in Debug: {}", partner, form, debug);
        }
    }
}
