//! Pentaleap's product-feed API keys: `Authorization: apikey <key>`, one key per publisher,
//! the default key from `PENTALEAP_API_KEY`.

use httpmock::MockServer;
use reqwest_partner_auth::{pentaleap, Error};
use url::Url;

use crate::common;
use crate::harness::{EnvValue, Partner};

const PUBLISHER: &str = "1001";
const MARKETS_PATH: &str = "/external/v2/markets";

pub(crate) struct Pentaleap;

impl Partner for Pentaleap {
    const NAME: &'static str = "pentaleap";
    type Credentials = pentaleap::ApiKeys;
    const ENV: &'static [(&'static str, EnvValue)] = &[("PENTALEAP_API_KEY", EnvValue::Secret)];

    fn from_env() -> Result<Self::Credentials, Error> {
        pentaleap::ApiKeys::from_env()
    }

    /// A publisher's key and the default key, both `secret`.
    fn credentials(secret: &str) -> Self::Credentials {
        pentaleap::ApiKeys::from_publishers([(PUBLISHER, secret)])
            .unwrap()
            .default_key(secret)
            .unwrap()
    }

    /// Publisher ids are not secret.
    fn public_ids() -> Vec<String> {
        vec![PUBLISHER.to_owned()]
    }

    fn debug_parts(keys: Self::Credentials, base: &Url) -> String {
        let layer = pentaleap::ApiKeyAuth::with_base_url(keys.clone(), base);
        format!("{keys:?} {keys:#?} {layer:?} {layer:#?}")
    }

    /// `GET /external/v2/markets` (no publisher in the path) carries the default key, once.
    async fn assert_sent(keys: Self::Credentials, secret: &str) {
        let server = MockServer::start_async().await;
        let api = server
            .mock_async(|when, then| {
                when.method("GET")
                    .path(MARKETS_PATH)
                    .header("authorization", format!("apikey {secret}"))
                    .header_count("authorization", ".*", 1);
                then.status(200).body("[]");
            })
            .await;
        let client = common::client(pentaleap::ApiKeyAuth::with_base_url(
            keys,
            &common::base(&server),
        ));

        let res = client.get(server.url(MARKETS_PATH)).send().await.unwrap();

        assert_eq!(res.status(), 200);
        assert_eq!(api.calls_async().await, 1);
    }
}

partner_rows!(Pentaleap);

/// A key that cannot travel in a header (a line break) is `InvalidEnv` naming the variable:
/// the error says where the bad value came from.
#[test]
fn from_env_names_a_key_that_cannot_travel_in_a_header() {
    use reqwest_partner_auth::error::ConfigError;
    use reqwest_partner_auth::Error;

    let env = crate::harness::Env::<Pentaleap>::lock();
    env.set("PENTALEAP_API_KEY", "key\r\nX-Injected: 1");
    match Pentaleap::from_env() {
        Err(Error::Config(ConfigError::InvalidEnv { name, .. })) => {
            assert_eq!(name, "PENTALEAP_API_KEY")
        }
        other => panic!("expected InvalidEnv, got {other:?}"),
    }
}
