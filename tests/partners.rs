//! What every partner shares, checked once for all of them.
//!
//! Each partner is described once (`partners/<partner>.rs`): how to build its source and
//! layer against a mock base URL with sentinel secrets, the exact token request its contract
//! describes, what its success and error bodies look like, the environment variables its
//! `from_env` reads, and which of its values are secret. Every row below then runs for every
//! partner it applies to, as its own test (`<partner>::<row>`):
//!
//! * malformed token responses (`partners/malformed.rs`): an HTML page, an empty or blank
//!   body, broken JSON, a body over the size cap, a token that cannot travel in a header, a
//!   missing or mistyped token field, a mistyped lifetime: each is its exact
//!   `Error::MalformedResponse`, fetched once (never retried), and no API call goes out;
//! * secrets (`partners/secrets.rs`): `Debug` shows the ids, never the secret; errors that
//!   echo the secret (raw or encoded) never show it, nor the token;
//! * `from_env` (`partners/env.rs`): each missing variable named in
//!   `ConfigError::MissingEnv`, invalid values in `ConfigError::InvalidEnv`, and the values read
//!   are the ones sent;
//! * the token's reach (`partners/origins.rs`): only the base URL's origin gets it, the
//!   production constructors target the documented token URL, and `allow_insecure_http()` on
//!   the source is the one switch for plain http to a named host;
//! * a rejected token (`partners/replay.rs`): refreshed and the request replayed once; a
//!   failing token endpoint retried until it recovers.
//!
//! What only one partner's contract says (the exact request, its error mapping, its expiry
//! rules) stays in that partner's own test file.
#![cfg(any(
    feature = "targeter",
    feature = "adgem",
    feature = "setu",
    feature = "channel-manager",
    feature = "pentaleap"
))]
// With some partner features off, some descriptor traits, shapes and rows have no user.
#![cfg_attr(
    not(all(
        feature = "targeter",
        feature = "adgem",
        feature = "setu",
        feature = "channel-manager",
        feature = "pentaleap"
    )),
    allow(dead_code)
)]

mod common;

/// One test per row, each calling `crate::<module>::<row>::<partner>()`.
macro_rules! rows {
    (async $p:ty; $($module:ident :: $row:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $row() {
                crate::$module::$row::<$p>().await;
            }
        )*
    };
    (sync $p:ty; $($module:ident :: $row:ident),* $(,)?) => {
        $(
            #[test]
            fn $row() {
                crate::$module::$row::<$p>();
            }
        )*
    };
}

/// The rows of every partner: `Debug` and `from_env`.
macro_rules! partner_rows {
    ($p:ty) => {
        rows!(sync $p;
            secrets::debug_shows_the_ids_never_the_secret,
            env::from_env_names_each_missing_variable,
            env::from_env_names_a_blank_variable,
        );
        #[cfg(unix)]
        #[test]
        fn from_env_names_a_variable_that_is_not_unicode() {
            crate::env::from_env_names_a_variable_that_is_not_unicode::<$p>();
        }
        rows!(async $p;
            env::from_env_values_are_the_ones_sent,
        );
    };
}

/// The rows of every partner with a token endpoint and a bearer token.
#[allow(unused_macros)] // unused when its partners' features are off
macro_rules! bearer_rows {
    ($p:ty) => {
        rows!(async $p;
            malformed::html_page,
            malformed::html_page_labelled_as_the_contract_type,
            malformed::empty_body,
            malformed::blank_body,
            malformed::truncated_json,
            malformed::json_array,
            malformed::token_with_cr_or_lf,
            malformed::body_over_the_size_cap,
            secrets::a_credential_error_echoing_the_secret_never_shows_it,
            secrets::a_server_error_echoing_the_secret_never_shows_it,
            secrets::no_encoding_of_the_secret_reaches_an_error,
            replay::api_401_refreshes_the_token_and_replays_once,
            replay::api_401_after_the_replay_is_returned_as_is,
            replay::a_server_error_then_success_recovers,
            origins::with_base_url_sends_the_token_only_to_the_base_origin,
            origins::plain_http_to_a_named_host_is_refused_without_the_switch,
            origins::allow_insecure_http_lets_the_token_endpoint_and_the_api_over_http,
        );
    };
}

/// The rows of partners whose token comes in a JSON object.
#[allow(unused_macros)] // unused when its partners' features are off
macro_rules! json_rows {
    ($p:ty) => {
        rows!(async $p;
            malformed::token_field_missing,
            malformed::token_field_not_a_string,
            malformed::token_field_empty,
        );
    };
}

/// The rows of partners whose answer carries the token's lifetime.
#[allow(unused_macros)] // unused when its partners' features are off
macro_rules! expiring_rows {
    ($p:ty) => {
        rows!(async $p;
            malformed::lifetime_as_an_object,
            malformed::lifetime_as_text,
        );
    };
}

/// The rows of partners whose contract names a production host.
#[allow(unused_macros)] // unused when its partners' features are off
macro_rules! production_rows {
    ($p:ty) => {
        rows!(sync $p;
            origins::production_constructors_target_the_documented_token_url,
        );
        rows!(async $p;
            origins::production_layer_leaves_other_origins_alone,
        );
    };
}

/// The rows of partners with environment variables that must parse.
#[allow(unused_macros)] // unused when its partners' features are off
macro_rules! invalid_env_rows {
    ($p:ty) => {
        rows!(sync $p;
            env::from_env_names_a_variable_that_does_not_parse,
        );
    };
}

#[path = "partners/harness.rs"]
mod harness;

#[path = "partners/env.rs"]
mod env;
#[path = "partners/secrets.rs"]
mod secrets;

#[cfg(any(
    feature = "targeter",
    feature = "adgem",
    feature = "setu",
    feature = "channel-manager"
))]
#[path = "partners/bearer.rs"]
mod bearer;
#[cfg(any(
    feature = "targeter",
    feature = "adgem",
    feature = "setu",
    feature = "channel-manager"
))]
#[path = "partners/malformed.rs"]
mod malformed;
#[cfg(any(
    feature = "targeter",
    feature = "adgem",
    feature = "setu",
    feature = "channel-manager"
))]
#[path = "partners/origins.rs"]
mod origins;
#[cfg(any(
    feature = "targeter",
    feature = "adgem",
    feature = "setu",
    feature = "channel-manager"
))]
#[path = "partners/replay.rs"]
mod replay;

#[cfg(feature = "adgem")]
#[path = "partners/adgem.rs"]
mod adgem;
#[cfg(feature = "channel-manager")]
#[path = "partners/channel_manager.rs"]
mod channel_manager;
#[cfg(feature = "pentaleap")]
#[path = "partners/pentaleap.rs"]
mod pentaleap;
#[cfg(feature = "setu")]
#[path = "partners/setu.rs"]
mod setu;
#[cfg(feature = "targeter")]
#[path = "partners/targeter.rs"]
mod targeter;
