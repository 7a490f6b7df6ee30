//! Secrets stay secret: `Debug` shows the ids, never the secret; an error built from an
//! answer that echoes the secret (raw or in any encoding) never shows it, nor the token.

use url::Url;

use crate::harness::{Partner, SECRET};

/// `Debug` (plain and pretty) of the credentials, the source and the layer shows the ids,
/// never the secret.
pub(crate) fn debug_shows_the_ids_never_the_secret<P: Partner>() {
    let base = Url::parse("https://partner.example/").unwrap();
    let shown = P::debug_parts(P::credentials(SECRET), &base);
    let name = P::NAME;
    assert!(!shown.contains(SECRET), "{name}: secret leaked: {shown}");
    for id in P::public_ids() {
        assert!(shown.contains(&id), "{name}: {id} is not a secret: {shown}");
    }
}

#[cfg(any(
    feature = "targeter",
    feature = "adgem",
    feature = "setu",
    feature = "channel-manager"
))]
pub(crate) use bearer_rows::*;

#[cfg(any(
    feature = "targeter",
    feature = "adgem",
    feature = "setu",
    feature = "channel-manager"
))]
mod bearer_rows {
    use httpmock::MockServer;
    use reqwest_partner_auth::clock::ManualClock;
    use reqwest_partner_auth::{Error, TokenSource};

    use crate::bearer::{
        api, api_request, api_url, base, cx, layer, success, token_endpoint, Answer, Bearer,
    };
    use crate::common;
    use crate::harness::{ODD_SECRET, SECRET};

    /// The sentinel token: it must never show up either.
    const TOKEN: &str = "SENTINEL-TOKEN-91ac";

    /// The API rejects the first token; the token endpoint then answers a credential error
    /// that echoes the secret. The request fails with `Error::InvalidCredentials` whose message
    /// has the secret replaced, and no `Debug` or `Display` of the layer, its cache, the
    /// client, the errors or a token fetched directly shows the secret or the token.
    pub(crate) async fn a_credential_error_echoing_the_secret_never_shows_it<P: Bearer>() {
        let name = P::NAME;
        let server = MockServer::start_async().await;
        let clock = ManualClock::new();
        // Odd fetches succeed, even ones fail with the echoing credential error.
        let echo = format!("{} ({SECRET})", P::CREDENTIAL_MESSAGE);
        let token = token_endpoint::<P>(&server, SECRET, move |n| match n % 2 {
            1 => success::<P>(TOKEN),
            _ => P::credential_error(&echo).response(),
        })
        .await;
        let api = api::<P>(&server, &[TOKEN]).await;

        let credentials = P::credentials(SECRET);
        let source = P::source(credentials.clone(), &base(&server));
        let mw = layer::<P>(&server, &clock, SECRET).build();
        let cache = mw.cache().clone();
        let before = format!("{} {mw:?}", P::debug_parts(credentials, &base(&server)));

        let client = common::client(mw);
        let err = common::send_err(api_request::<P>(&client, &api_url::<P>(&server))).await;
        let inner = common::crate_error(&err);
        match &inner {
            Error::InvalidCredentials { message, code } => {
                let scrubbed = format!("{} ([redacted])", P::CREDENTIAL_MESSAGE);
                assert_eq!(message, &scrubbed, "{name}");
                assert_eq!(code.as_deref(), P::CREDENTIAL_CODE, "{name}");
            }
            other => panic!("{name}: expected InvalidCredentials, got {other:?}"),
        }
        // A token fetched directly (its `Debug` hides the token and any refresh token).
        let parsed = source.fetch(&cx()).await.unwrap();

        let after = format!("{cache:?} {client:?} {inner:?} {inner} {err} {err:?} {parsed:?}");
        for text in [&before, &after] {
            assert!(!text.contains(SECRET), "{name}: secret leaked: {text}");
            assert!(!text.contains(TOKEN), "{name}: token leaked: {text}");
        }
        assert_eq!(token.calls_async().await, 3, "{name}");
        assert_eq!(api.calls_async().await, 1, "{name}: nothing to replay with");
    }

    /// A server error that echoes the secret is retried, then `Error::TokenEndpoint` with the
    /// partner's message, the secret replaced; no `Display` or `Debug` shows it.
    pub(crate) async fn a_server_error_echoing_the_secret_never_shows_it<P: Bearer>() {
        let name = P::NAME;
        let server = MockServer::start_async().await;
        let clock = ManualClock::new();
        let answer = P::server_error(&format!("{} ({SECRET})", P::SERVER_MESSAGE));
        let status = answer.status;
        let token = token_endpoint::<P>(&server, SECRET, move |_| answer.response()).await;
        let api = api::<P>(&server, &[]).await;
        let client = common::client(layer::<P>(&server, &clock, SECRET));

        let err = common::send_err(api_request::<P>(&client, &api_url::<P>(&server))).await;
        let inner = common::crate_error(&err);

        match &inner {
            Error::TokenEndpoint {
                status: got,
                excerpt,
                ..
            } => {
                assert_eq!(got.as_u16(), status, "{name}");
                let scrubbed = format!("{} ([redacted])", P::SERVER_MESSAGE);
                assert_eq!(excerpt, &scrubbed, "{name}");
            }
            other => panic!("{name}: expected TokenEndpoint, got {other:?}"),
        }
        let shown = format!("{inner:?} {inner} {err} {err:?} {client:?}");
        assert!(!shown.contains(SECRET), "{name}: secret leaked: {shown}");
        assert_eq!(token.calls_async().await, 3, "{name}: retried");
        assert_eq!(api.calls_async().await, 0, "{name}");
    }

    /// The forms a partner may echo `secret` in, with a name for failure messages.
    fn echoed_forms(secret: &str) -> Vec<(&'static str, String)> {
        use base64::Engine as _;
        let json = serde_json::to_string(secret).unwrap();
        let json = json[1..json.len() - 1].to_owned();
        let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        let mut lower = String::new();
        let mut hex_left = 0;
        for c in form.chars() {
            lower.push(if hex_left > 0 {
                c.to_ascii_lowercase()
            } else {
                c
            });
            hex_left = if c == '%' { 2 } else { hex_left.max(1) - 1 };
        }
        let every_char_escaped: String = secret
            .encode_utf16()
            .map(|unit| format!("\\u{unit:04x}"))
            .collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
        let b64_url = base64::engine::general_purpose::URL_SAFE.encode(secret);
        vec![
            ("raw", secret.to_owned()),
            ("json-escaped", json.clone()),
            ("json-escaped with \\/", json.replace('/', "\\/")),
            ("json \\u escapes", every_char_escaped),
            ("form-encoded", form.clone()),
            ("form-encoded, lower-case hex", lower),
            ("percent-encoded", form.replace('+', "%20")),
            ("percent-encoded twice", form.replace('%', "%25")),
            ("base64", b64),
            ("base64url", b64_url),
        ]
    }

    /// Panics if `text` holds any form of `secret`, or any 8 characters of one (a secret cut
    /// short is still a leak).
    #[track_caller]
    fn assert_no_form_of(what: &str, text: &str, secret: &str) {
        for (name, form) in echoed_forms(secret) {
            let chars: Vec<char> = form.chars().collect();
            for part in chars.windows(8.min(chars.len())) {
                let part: String = part.iter().collect();
                assert!(
                    !text.contains(&part),
                    "{what} leaks the {name} form ({part:?}): {text}"
                );
            }
        }
    }

    /// One direct fetch from `P`'s source (secret [`ODD_SECRET`]) against a token endpoint
    /// answering `answer`; the error.
    async fn fetch_error<P: Bearer>(answer: Answer) -> Error {
        let server = MockServer::start_async().await;
        let token = token_endpoint::<P>(&server, ODD_SECRET, move |_| answer.response()).await;
        let source = P::source(P::credentials(ODD_SECRET), &base(&server));
        let err = source
            .fetch(&cx())
            .await
            .expect_err("the fetch should fail");
        assert_eq!(token.calls_async().await, 1, "{}", P::NAME);
        err
    }

    /// A credential error and a server error echoing the secret raw, JSON-escaped, with `\u`
    /// escapes, form- or percent-encoded (either hex case, twice), or in base64: the error's
    /// `Display` and `Debug` hold none of those forms; the echo is replaced or not quoted.
    pub(crate) async fn no_encoding_of_the_secret_reaches_an_error<P: Bearer>() {
        let name = P::NAME;
        for (form_name, form) in echoed_forms(ODD_SECRET) {
            let credential = P::credential_error(&format!("{} {form}", P::CREDENTIAL_MESSAGE));
            let server = P::server_error(&format!("{} {form}", P::SERVER_MESSAGE));
            for (answer, is_credential_error) in [(credential, true), (server, false)] {
                let what = format!("{name}: {form_name} in {:?}", answer.body);
                let status = answer.status;
                let err = fetch_error::<P>(answer).await;
                match &err {
                    Error::InvalidCredentials { .. } if is_credential_error => {}
                    Error::TokenEndpoint { status: got, .. }
                        if !is_credential_error && got.as_u16() == status => {}
                    _ => panic!("{what}: unexpected error {err:?}"),
                }
                let shown = format!("{err} {err:?}");
                assert_no_form_of(&what, &shown, ODD_SECRET);
                assert!(
                    shown.contains("[redacted]") || shown.contains("not quoted"),
                    "{what}: the echo was neither replaced nor withheld: {shown}"
                );
            }
        }
    }
}
